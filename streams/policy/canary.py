"""The leak canary: an independent second look at what is about to leave.

It walks each outgoing delivery against the governed schema's types and the notice, with no code
shared with the engine's projection, and reports every value that the recipient may not receive:
- a field of any class that is never shared (secrecy of communications, sensitive, insurer-only,
  consent, metadata);
- a key the governed schema does not know, or a union value on a branch the schema does not have;
- an item that is not in the notice, or not among the items of this delivery;
- a recipient that is not a joint user of the version, or the source itself.
A channel of the insurer's notice (``Policy.handling``) may also hold the insurer-only and sensitive
fields its basis and the policy allow: the canary works that allowance out from the policy and the
schema on its own (``_channel_allowance``), never from what the engine says it projected. Secrecy of
communications, consent and metadata fields are never allowed anywhere, whatever a policy says.
It must never find anything; when it does, the engine has a bug and the record is not sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.policy.bases import BASES
from streams.policy.classification import UNKNOWN, ClassifiedSchema, FieldClass, FieldNode, TypeNode
from streams.policy.decision import Delivery
from streams.policy.loader import PolicySet
from streams.policy.model import Policy

ITEM_NOT_ALLOWED = "item_not_allowed"
NOT_A_JOINT_USER = "not_a_joint_user"
_DELIVERABLE = (FieldClass.IDENTIFIER, FieldClass.ITEM)
# Classes a channel's allowance may open, field by field; the others never leave.
_OPENABLE = (FieldClass.INSURER_ONLY, FieldClass.SENSITIVE)


def _opened(path: str) -> str:
    """The allowance's token for a protected field a channel may hold (cannot be an item id)."""
    return f"path:{path}"


class LeakCanary:
    def __init__(self, schema: ClassifiedSchema, policies: PolicySet) -> None:
        self._check = _record_check(schema.root.fields, "")
        self._policies = {p.version: p for p in policies.versions}
        self._nodes = tuple(_every_node(schema.root.fields))
        self._allowances: dict[tuple[str, str, tuple[str, ...]], frozenset[str]] = {}

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
            allowed: frozenset[str] = frozenset()
            if policy is None or delivery.recipient == source:
                found.append((delivery.recipient, "<recipient>", NOT_A_JOINT_USER))
            elif delivery.recipient in policy.users_by_id:
                allowed = frozenset(delivery.items) & policy.item_ids
            elif delivery.recipient in policy.channels_by_id and policy.handling is not None:
                if source != policy.handling.provider:
                    found.append((delivery.recipient, "<recipient>", NOT_A_JOINT_USER))
                else:
                    allowed = self._channel_allowance(policy, delivery)
            else:
                found.append((delivery.recipient, "<recipient>", NOT_A_JOINT_USER))
            key = (id(delivery.record), allowed)
            leaks = walked.get(key)
            if leaks is None:
                leaks = walked[key] = []
                self._check(delivery.record, allowed, leaks)
            found += [(delivery.recipient, path, cls) for path, cls in leaks]
        return found

    def _channel_allowance(self, policy: Policy, delivery: Delivery) -> frozenset[str]:
        """What a channel may hold, from the policy and the schema alone: its items, and the tokens
        of the protected fields its basis may carry and its entry names (sensitive ones only when
        every purpose of the delivery and of the channel is one the guideline allows)."""
        cache_key = (policy.version, delivery.recipient, delivery.purposes)
        cached = self._allowances.get(cache_key)
        if cached is not None:
            return cached
        assert policy.handling is not None
        channel = policy.channels_by_id[delivery.recipient]
        classes = BASES[channel.basis].classes
        sensitive_purposes = set(policy.handling.sensitive_purposes)
        sensitive_ok = set(delivery.purposes) <= sensitive_purposes and set(channel.purposes) <= sensitive_purposes
        opened: set[str] = set()
        for node in self._nodes:
            if node.cls not in classes:
                continue
            # An insurer-only field named by the channel opens with all its insurer-only parts; a
            # sensitive one opens only by its own path (a diagnosis inside a claim is named alone).
            top = node.path.split(".", 1)[0].split("[", 1)[0].split("{", 1)[0]
            insurer = node.cls is FieldClass.INSURER_ONLY and top in channel.insurer_fields
            sensitive = node.cls is FieldClass.SENSITIVE and sensitive_ok and node.path in channel.sensitive_fields
            if insurer or sensitive:
                opened.add(_opened(node.path))
        allowed = (frozenset(channel.items) & policy.item_ids) | frozenset(opened)
        self._allowances[cache_key] = allowed
        return allowed


def _every_node(fields: tuple[FieldNode, ...]) -> Iterable[FieldNode]:
    for node in fields:
        yield node
        yield from _every_node(node.children)


# The schema is walked once, when the canary is built: each type becomes a check with its paths
# already written, so inspecting a delivery only looks at the values. A check appends its findings;
# a type with nothing to check inside (a scalar) has no check at all (None).
_Found = list[tuple[str, str]]
_Check = Callable[[Any, frozenset[str], _Found], None]


@dataclass(frozen=True)
class _FieldRule:
    path: str
    never_shared: str | None  # the class's name when no value of this field may leave (but see ``opened``)
    item: str | None  # the notice item the delivery must name, for an item field
    check: _Check | None
    opened: str | None = None  # the allowance token that lets a channel hold this protected field
    scalars_pass: bool = False  # the check lets any scalar value through (an untagged union, an array or map)


_SCALARS = frozenset({str, int, float, bool, bytes})  # exact types: a subclass takes the long way


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _record_check(fields: tuple[FieldNode, ...], prefix: str) -> _Check:
    rules: dict[str, _FieldRule] = {}
    for node in fields:
        path = f"{prefix}{node.name}"
        if node.cls in _OPENABLE:
            rules[node.name] = _FieldRule(
                path, node.cls.value, None, _value_check(node.type, path), _opened(node.path), _lets_scalars(node.type)
            )
        elif node.cls not in _DELIVERABLE:
            rules[node.name] = _FieldRule(path, node.cls.value, None, None)
        else:
            item = node.item if node.cls is FieldClass.ITEM else None
            check = _value_check(node.type, path)
            rules[node.name] = _FieldRule(path, None, item, check, None, _lets_scalars(node.type))
    where = prefix or "<record>"
    plans: dict[frozenset[str], _Plan] = {}

    def check_record(value: Any, allowed: frozenset[str], found: _Found) -> None:
        if type(value) is dict:
            plan = plans.get(allowed)
            if plan is None:
                if len(plans) >= _MAX_PLANS:
                    plans.clear()
                plan = plans[allowed] = _plan(rules, allowed)
            if _clean(value, plan, allowed, found):
                return
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
                if rule.opened is None or rule.opened not in allowed:
                    found.append((rule.path, rule.never_shared))
                elif rule.check is not None:
                    rule.check(inner, allowed, found)
            elif rule.item is not None and rule.item not in allowed:
                found.append((rule.path, ITEM_NOT_ALLOWED))
            elif rule.check is not None:
                rule.check(inner, allowed, found)

    return check_record


def _lets_scalars(node: TypeNode) -> bool:
    """Whether the check of a value of this type lets any scalar through: an array's or a map's looks
    only into a list or a mapping, an untagged union's takes a scalar as its field's class."""
    return node.kind in ("array", "map") or (node.kind == "union" and not node.tagged)


class _Plan(NamedTuple):
    """What a record's fields need under one allowance, when nothing is wrong: the names whose
    values need no look at all (``passes``), and the checks of those whose values are looked into
    (``inner``; of these, ``scalars_pass`` accept any scalar as it is)."""

    passes: frozenset[str]
    inner: dict[str, _Check]
    scalars_pass: frozenset[str]


# Allowances are few (one per item set of a notice version, and per channel); the bound only keeps
# generated ones from growing the plans without end.
_MAX_PLANS = 256


def _plan(rules: Mapping[str, _FieldRule], allowed: frozenset[str]) -> _Plan:
    passes: set[str] = set()
    inner: dict[str, _Check] = {}
    scalars_pass: set[str] = set()
    for name, rule in rules.items():
        if rule.never_shared is not None and (rule.opened is None or rule.opened not in allowed):
            continue  # a finding for any value but null
        if rule.item is not None and rule.item not in allowed:
            continue
        if rule.check is None:
            passes.add(name)
        else:
            inner[name] = rule.check
            if rule.scalars_pass:
                scalars_pass.add(name)
    return _Plan(frozenset(passes), inner, frozenset(scalars_pass))


def _clean(value: dict[Any, Any], plan: _Plan, allowed: frozenset[str], found: _Found) -> bool:
    """True when the record level ``value`` holds nothing to report (the common case, told by set
    arithmetic on its names and a look into the values that hold structure); False sends the caller
    to the full walk, which reports what there is in the record's own order. What this looked into
    and found is taken back: a finding is only ever made by the full walk.

    Names are matched by equality here, as in the walk's rule lookup; the walk also refuses a key
    that is not a ``str``. A non-``str`` key equal to a field's name would need a class with its own
    ``__eq__`` and ``__hash__``: the decoders build ``str`` keys only and the projection copies them,
    so no such key reaches this look, and testing each key's type would cost about a tenth of the
    check."""
    rest = value.keys() - plan.passes
    if not rest:
        return True
    mark = len(found)
    for name in rest:
        inner = value[name]
        if inner is None:
            continue
        check = plan.inner.get(name)
        if check is None:
            break
        if type(inner) in _SCALARS and name in plan.scalars_pass:
            continue
        check(inner, allowed, found)
    else:
        if len(found) == mark:
            return True
    del found[mark:]
    return False


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
        if type(value) is list:  # never a mapping: asked first, as a mapping's test is slower
            branch, inner = list_branch, list_check
        elif _is_mapping(value):
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
