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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.policy.classification import UNKNOWN, ClassifiedSchema, FieldClass, FieldNode, TypeNode
from streams.policy.decision import Delivery
from streams.policy.loader import PolicySet

ITEM_NOT_ALLOWED = "item_not_allowed"
NOT_A_JOINT_USER = "not_a_joint_user"
_DELIVERABLE = (FieldClass.IDENTIFIER, FieldClass.ITEM)


class LeakCanary:
    def __init__(self, schema: ClassifiedSchema, policies: PolicySet) -> None:
        self._check = _record_check(schema.root.fields, "")
        self._policies = {p.version: p for p in policies.versions}

    def inspect(self, delivery: Delivery, *, source: str, policy_version: str | None) -> list[tuple[str, str]]:
        """(path, class) of every value in ``delivery`` that its recipient may not receive."""
        return [
            (path, cls) for _, path, cls in self.inspect_all([delivery], source=source, policy_version=policy_version)
        ]

    def inspect_all(
        self, deliveries: Iterable[Delivery], *, source: str, policy_version: str | None
    ) -> list[tuple[str, str, str]]:
        """(recipient, path, class) of every value any of ``deliveries`` may not hold for its
        recipient. Each delivery is checked against its own recipient's allowance; the walk of a
        record is shared only between deliveries of the same record object under the same allowed
        items (the same walk would find the same values), never between different allowances."""
        found: list[tuple[str, str, str]] = []
        policy = self._policies.get(policy_version or "")
        walked: dict[tuple[int, frozenset[str]], list[tuple[str, str]]] = {}
        for delivery in deliveries:
            if policy is None or delivery.recipient == source or delivery.recipient not in policy.users_by_id:
                found.append((delivery.recipient, "<recipient>", NOT_A_JOINT_USER))
                allowed: frozenset[str] = frozenset()
            else:
                allowed = frozenset(delivery.items) & policy.item_ids
            key = (id(delivery.record), allowed)
            leaks = walked.get(key)
            if leaks is None:
                leaks = walked[key] = []
                self._check(delivery.record, allowed, leaks)
            found += [(delivery.recipient, path, cls) for path, cls in leaks]
        return found


# The schema is walked once, when the canary is built: each type becomes a check with its paths
# already written, so inspecting a delivery only looks at the values. A check appends its findings;
# a type with nothing to check inside (a scalar) has no check at all (None).
_Found = list[tuple[str, str]]
_Check = Callable[[Any, frozenset[str], _Found], None]


@dataclass(frozen=True)
class _FieldRule:
    path: str
    never_shared: str | None  # the class's name when no value of this field may leave
    item: str | None  # the notice item the delivery must name, for an item field
    check: _Check | None


_SCALARS = frozenset({str, int, float, bool, bytes})  # exact types: a subclass takes the long way


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _record_check(fields: tuple[FieldNode, ...], prefix: str) -> _Check:
    rules: dict[str, _FieldRule] = {}
    for node in fields:
        path = f"{prefix}{node.name}"
        if node.cls not in _DELIVERABLE:
            rules[node.name] = _FieldRule(path, node.cls.value, None, None)
        else:
            item = node.item if node.cls is FieldClass.ITEM else None
            rules[node.name] = _FieldRule(path, None, item, _value_check(node.type, path))
    where = prefix or "<record>"

    def check_record(value: Any, allowed: frozenset[str], found: _Found) -> None:
        if not _is_mapping(value):
            found.append((where, UNKNOWN))
            return
        for position, (name, inner) in enumerate(value.items(), start=1):
            if inner is None:
                continue
            rule = rules.get(name) if isinstance(name, str) else None
            if rule is None:
                found.append((f"{prefix}<unknown@{position}>", UNKNOWN))
            elif rule.never_shared is not None:
                found.append((rule.path, rule.never_shared))
            elif rule.item is not None and rule.item not in allowed:
                found.append((rule.path, ITEM_NOT_ALLOWED))
            elif rule.check is not None:
                rule.check(inner, allowed, found)

    return check_record


def _value_check(node: TypeNode, path: str) -> _Check | None:
    kind = node.kind
    if kind == "record":
        return _record_check(node.fields, f"{path}.")
    if kind == "array" and node.items is not None:
        element = _value_check(node.items, f"{path}[]")
        return None if element is None else _elements_check(element, list, list)
    if kind == "map" and node.items is not None:
        element = _value_check(node.items, f"{path}{{}}")
        return None if element is None else _elements_check(element, Mapping, lambda value: value.values())
    if kind == "union":
        return _union_check(node, path)
    return None


def _elements_check(element: _Check, container: type, elements: Callable[[Any], Any]) -> _Check:
    def check_elements(value: Any, allowed: frozenset[str], found: _Found) -> None:
        if isinstance(value, container):
            for inner in elements(value):
                if inner is not None:
                    element(inner, allowed, found)

    return check_elements


def _union_check(node: TypeNode, path: str) -> _Check:
    branches = [b for b in node.branches if b.kind != "null"]
    if node.tagged:
        named = {b.branch_name: _value_check(b, path) for b in branches}

        def check_tagged(value: Any, allowed: frozenset[str], found: _Found) -> None:
            if not (isinstance(value, tuple) and len(value) == 2 and value[0] in named):
                found.append((path, UNKNOWN))
                return
            inner = named[value[0]]
            if value[1] is not None and inner is not None:
                inner(value[1], allowed, found)

        return check_tagged
    # Untagged: at most one branch holds a mapping, and one a list; a scalar's class is its field's.
    mapping_branch = next((b for b in branches if b.kind in ("record", "map")), None)
    list_branch = next((b for b in branches if b.kind == "array"), None)
    mapping_check = None if mapping_branch is None else _value_check(mapping_branch, path)
    list_check = None if list_branch is None else _value_check(list_branch, path)

    def check_untagged(value: Any, allowed: frozenset[str], found: _Found) -> None:
        if type(value) in _SCALARS:
            return
        if _is_mapping(value):
            branch, inner = mapping_branch, mapping_check
        elif isinstance(value, list):
            branch, inner = list_branch, list_check
        else:
            return
        if branch is None:
            found.append((path, UNKNOWN))
        elif inner is not None:
            inner(value, allowed, found)

    return check_untagged
