"""The leak canary: an independent second look at what is about to leave.

It walks each outgoing delivery against the governed schema's types and the notice, with no code
shared with the engine's projection, and reports every value that the recipient may not receive:
- a field of any class that is never shared (secrecy of communications, sensitive, insurer-only,
  consent, metadata);
- a key the governed schema does not know, or a union value on a branch the schema does not have;
- an item that is not in the notice, or not among the items of this delivery;
- a recipient that is not a joint user of the version, or the source itself.
It must never find anything; when it does, the engine has a bug and the record is not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.policy.classification import UNKNOWN, ClassifiedSchema, FieldClass, FieldNode, TypeNode
from streams.policy.decision import Delivery
from streams.policy.loader import PolicySet

ITEM_NOT_ALLOWED = "item_not_allowed"
NOT_A_JOINT_USER = "not_a_joint_user"
_DELIVERABLE = (FieldClass.IDENTIFIER, FieldClass.ITEM)


class LeakCanary:
    def __init__(self, schema: ClassifiedSchema, policies: PolicySet) -> None:
        self._root = schema.root
        self._policies = {p.version: p for p in policies.versions}

    def inspect(self, delivery: Delivery, *, source: str, policy_version: str | None) -> list[tuple[str, str]]:
        """(path, class) of every value in ``delivery`` that its recipient may not receive."""
        found: list[tuple[str, str]] = []
        policy = self._policies.get(policy_version or "")
        if policy is None or delivery.recipient == source or delivery.recipient not in policy.users_by_id:
            found.append(("<recipient>", NOT_A_JOINT_USER))
            allowed: frozenset[str] = frozenset()
        else:
            allowed = frozenset(delivery.items) & policy.item_ids
        _Walk(allowed, found).record(delivery.record, self._root.fields, "")
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
