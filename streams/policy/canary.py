"""The leak canary: an independent second look at what is about to leave.

It walks an outgoing delivery against the schema's classification, with no code shared with the
engine's projection, and reports every field that is protected (secrecy of communications,
sensitive, insurer-only) or not in the schema. It must never find anything; when it does, the
engine has a bug and the record must not be sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.policy.classification import PROTECTED_CLASSES, UNKNOWN, ClassifiedSchema, FieldNode


class LeakCanary:
    def __init__(self, schema: ClassifiedSchema) -> None:
        self._top = {f.name: f for f in schema.fields}

    def inspect(self, delivery: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(path, class) of every protected or unknown field holding a value in ``delivery``."""
        found: list[tuple[str, str]] = []
        _walk(delivery, self._top, "", found)
        return found


def _walk(record: Mapping[str, Any], fields: dict[str, FieldNode], prefix: str, found: list[tuple[str, str]]) -> None:
    for name, value in record.items():
        if value is None:
            continue
        node = fields.get(name)
        path = f"{prefix}{name}"
        if node is None:
            found.append((path, UNKNOWN))
            continue
        if node.cls in PROTECTED_CLASSES:
            found.append((path, node.cls.value))
            continue
        if node.children:
            children = {c.name: c for c in node.children}
            elements = value if isinstance(value, list) else list(value.values()) if _is_map(value, node) else [value]
            for element in elements:
                if isinstance(element, Mapping):
                    _walk(element, children, f"{path}[]." if isinstance(value, list) else f"{path}.", found)


def _is_map(value: Any, node: FieldNode) -> bool:
    return (
        isinstance(value, Mapping)
        and node.type.kind != "record"
        and any(b.kind == "map" for b in (node.type, *node.type.branches))
    )
