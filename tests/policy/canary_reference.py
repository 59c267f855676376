"""The leak canary as a plain recursive walk: the oracle the compiled canary is tested against.

This was the canary's implementation before it was compiled per schema (for speed); it reads the
schema on every value, which makes it slow and easy to check by eye.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.policy.canary import ITEM_NOT_ALLOWED
from streams.policy.classification import UNKNOWN, FieldClass, FieldNode, TypeNode

_DELIVERABLE = (FieldClass.IDENTIFIER, FieldClass.ITEM)


def reference_findings(record: Any, root: TypeNode, allowed: frozenset[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    _Walk(allowed, found).record(record, root.fields, "")
    return found


class _Walk:
    def __init__(self, allowed: frozenset[str], found: list[tuple[str, str]]) -> None:
        self.allowed = allowed
        self.found = found

    def record(self, value: Any, fields: tuple[FieldNode, ...], prefix: str) -> None:
        if not isinstance(value, Mapping):
            self.found.append((prefix or "<record>", UNKNOWN))
            return
        by_name = {f.name: f for f in fields}
        for position, (name, inner) in enumerate(value.items(), start=1):
            if inner is None:
                continue
            node = by_name.get(name) if isinstance(name, str) else None
            if node is None:
                self.found.append((f"{prefix}<unknown@{position}>", UNKNOWN))
                continue
            path = f"{prefix}{name}"
            if node.cls not in _DELIVERABLE:
                self.found.append((path, node.cls.value))
            elif node.cls is FieldClass.ITEM and node.item not in self.allowed:
                self.found.append((path, ITEM_NOT_ALLOWED))
            else:
                self.value(inner, node.type, path)

    def value(self, value: Any, node: TypeNode, path: str) -> None:
        kind = node.kind
        if kind == "record":
            self.record(value, node.fields, f"{path}.")
        elif kind == "array" and node.items is not None:
            if isinstance(value, list):
                for element in value:
                    if element is not None:
                        self.value(element, node.items, f"{path}[]")
        elif kind == "map" and node.items is not None:
            if isinstance(value, Mapping):
                for element in value.values():
                    if element is not None:
                        self.value(element, node.items, f"{path}{{}}")
        elif kind == "union":
            self.union(value, node, path)

    def union(self, value: Any, node: TypeNode, path: str) -> None:
        branches = [b for b in node.branches if b.kind != "null"]
        if node.tagged:
            named = {b.branch_name: b for b in branches}
            if not (isinstance(value, tuple) and len(value) == 2 and value[0] in named):
                self.found.append((path, UNKNOWN))
                return
            if value[1] is not None:
                self.value(value[1], named[value[0]], path)
            return
        if isinstance(value, Mapping):
            holder = next((b for b in branches if b.kind in ("record", "map")), None)
        elif isinstance(value, list):
            holder = next((b for b in branches if b.kind == "array"), None)
        else:
            return  # a scalar: its class is its field's
        if holder is None:
            self.found.append((path, UNKNOWN))
        else:
            self.value(value, holder, path)
