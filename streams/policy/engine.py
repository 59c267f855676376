"""The decision: which joint users may receive which items of a record, for which purposes.

Pure: no I/O, no clocks (the caller passes ``now``), no exceptions for bad records.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.policy.classification import (
    UNKNOWN,
    ClassifiedSchema,
    FieldClass,
    FieldNode,
    TypeNode,
    Violation,
)
from streams.policy.decision import Decision, Delivery, DroppedField, Reason, Status
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.policy.validation import compile_record_check

Project = Callable[[Any], Any]

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SHAREABLE = (FieldClass.IDENTIFIER, FieldClass.ITEM)


def _safe_name(key: object) -> str:
    """An unknown key is reported by name only if it looks like a field name (a key can carry data)."""
    return key if isinstance(key, str) and _SAFE_NAME.fullmatch(key) else "<unnamed>"


@dataclass(frozen=True, slots=True)
class _Route:
    recipient: str
    purposes: tuple[str, ...]
    items: tuple[str, ...]
    project: Project


class Engine:
    """Decides records of one schema under the versions of one notice."""

    def __init__(self, schema: ClassifiedSchema, policies: PolicySet | Policy) -> None:
        self.schema = schema
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet.of([policies])
        self._check = compile_record_check(schema)
        self._fields = schema.fields
        self._names = frozenset(f.name for f in self._fields)
        # DroppedField values are immutable: built once, reused for every record.
        self._dropped_top = tuple(
            (f.name, DroppedField(f.path, f.cls.value)) for f in self._fields if f.cls not in _SHAREABLE
        )
        self._scanned = tuple((f, _drop_scanner(f)) for f in self._fields if f.cls in _SHAREABLE and f.children)
        # A decoded record has no unknown keys, so only subtrees holding non-shareable fields need a scan.
        self._scanned_trusted = tuple((f, scan) for f, scan in self._scanned if not _fully_shareable(f))
        self._routes: dict[tuple[str, str, bool, bool], tuple[_Route, ...]] = {}
        self._projectors: dict[tuple[frozenset[str], bool], Project] = {}
        self._time_field = "updated_at" if "updated_at" in self._names else None

    def validate(self, record: Any) -> Violation | None:
        """The first schema violation of a native record, or None."""
        return self._check(record, "")

    def policy_for(self, record: Mapping[str, Any], now: dt.datetime | None) -> Policy | None:
        at = now
        if self._time_field is not None:
            millis = record.get(self._time_field)
            if type(millis) is int:
                at = _EPOCH + dt.timedelta(milliseconds=millis)
        return self.policies.in_force(at)

    def decide(
        self,
        record: Any,
        source: str,
        *,
        now: dt.datetime | None = None,
        policy: Policy | None = None,
        stopped: bool = False,
        trusted: bool = False,
    ) -> Decision:
        """Decide one record in native form (timestamps as epoch millis, dates as epoch days).

        ``policy`` forces a version (replays); otherwise the version in force at the record's
        ``updated_at`` (or ``now``) applies. ``stopped`` says a stop-of-use request covers the subject.
        """
        if type(record) is not dict:
            return Decision(Status.INVALID, Reason.NOT_AN_OBJECT, "the record is not a JSON object / Avro record")
        problem = None if trusted else self._check(record, "")
        key = record.get("customer_id") if type(record.get("customer_id")) is str else None
        if problem is not None:
            return Decision(Status.INVALID, Reason.SCHEMA_VIOLATION, str(problem), key=key)
        dropped = self._dropped(record, trusted)
        if record.get("source_company") != source:
            return Decision(
                Status.INVALID,
                Reason.SOURCE_MISMATCH,
                "source_company differs from the producing company",
                key=key,
                dropped=dropped,
            )
        chosen = policy or self.policy_for(record, now)
        if chosen is None:
            return Decision(
                Status.WITHHELD,
                Reason.NO_POLICY_IN_FORCE,
                "the record predates every notice version",
                key=key,
                dropped=dropped,
            )
        version = chosen.version

        def withheld(reason: Reason, detail: str = "") -> Decision:
            return Decision(Status.WITHHELD, reason, detail, key=key, dropped=dropped, policy_version=version)

        if source not in chosen.users_by_id:
            return withheld(Reason.SOURCE_NOT_JOINT_USER, "the producing company is not a joint user")
        consent = record.get("consent") or {}
        if consent.get("joint_use_stop"):
            return withheld(Reason.JOINT_USE_STOP, "the subject asked to stop joint use")
        if stopped:
            return withheld(Reason.STOP_OF_USE, "a stop-of-use request covers the subject")
        opted_out = bool(consent.get("marketing_opt_out"))
        purposes = tuple(p for p in chosen.purpose_ids if not (opted_out and p in chosen.marketing_purposes))
        routes = self._routes_for(chosen, source, opted_out, trusted)
        if not routes:
            return Decision(
                Status.WITHHELD,
                Reason.NO_RECIPIENT,
                "no joint user may receive the record",
                key=key,
                purposes=purposes,
                dropped=dropped,
                policy_version=version,
            )
        deliveries = {r.recipient: Delivery(r.recipient, r.purposes, r.items, r.project(record)) for r in routes}
        return Decision(
            Status.SHARED,
            Reason.SHARED,
            key=key,
            purposes=purposes,
            deliveries=deliveries,
            dropped=dropped,
            policy_version=version,
        )

    def _dropped(self, record: dict[str, Any], trusted: bool) -> tuple[DroppedField, ...]:
        found = [dropped for name, dropped in self._dropped_top if record.get(name) is not None]
        if not trusted and not record.keys() <= self._names:
            found.extend(DroppedField(_safe_name(k), UNKNOWN) for k in record if k not in self._names)
        for node, scan in self._scanned_trusted if trusted else self._scanned:
            value = record.get(node.name)
            if value is not None:
                scan(value, found)
        return tuple(found)

    def _routes_for(self, policy: Policy, source: str, opted_out: bool, trusted: bool) -> tuple[_Route, ...]:
        cache_key = (policy.version, source, opted_out, trusted)
        cached = self._routes.get(cache_key)
        if cached is not None:
            return cached
        allowed = frozenset(p for p in policy.purpose_ids if not (opted_out and p in policy.marketing_purposes))
        ordinal = {p: i for i, p in enumerate(policy.purpose_ids)}
        schema_items = self.schema.items_used() & policy.item_ids
        routes = []
        for user in policy.joint_users:
            if user.id == source:
                continue
            usable = policy.declared_purposes(user.id) & allowed
            items = frozenset(i for i in schema_items if policy.purposes_of_item[i] & usable)
            if not items:
                continue
            served = frozenset().union(*(policy.purposes_of_item[i] & usable for i in items))
            routes.append(
                _Route(
                    user.id,
                    tuple(sorted(served, key=ordinal.__getitem__)),
                    tuple(sorted(items)),
                    self._projector(items, trusted),
                )
            )
        result = tuple(routes)
        self._routes[cache_key] = result
        return result

    def _projector(self, items: frozenset[str], trusted: bool) -> Project:
        cached = self._projectors.get((items, trusted))
        if cached is None:
            cached = _record_projector(self._fields, items, trusted)
            self._projectors[(items, trusted)] = cached
        return cached


def _kept(node: FieldNode, items: frozenset[str]) -> bool:
    return node.cls is FieldClass.IDENTIFIER or (node.cls is FieldClass.ITEM and node.item in items)


def _fully_kept(node: FieldNode, items: frozenset[str]) -> bool:
    return _kept(node, items) and all(_fully_kept(c, items) for c in node.children)


def _fully_shareable(node: FieldNode) -> bool:
    return node.cls in _SHAREABLE and all(_fully_shareable(c) for c in node.children)


def _record_projector(fields: tuple[FieldNode, ...], items: frozenset[str], trusted: bool) -> Project:
    # A decoded (trusted) subtree whose fields are all kept is passed on as it is: nothing to remove.
    return projector_of(
        [
            (f.name, None if not f.children or (trusted and _fully_kept(f, items)) else _value_projector(f.type, items))
            for f in fields
            if _kept(f, items)
        ]
    )


def projector_of(plan: list[tuple[str, Project | None]]) -> Project:
    """A record projection from a plan: the fields to keep, each with its sub-projection (None: as is)."""

    def project(record: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in plan:
            value = record.get(name)
            if value is not None:
                out[name] = value if sub is None else sub(value)
        return out

    return project


def _value_projector(node: TypeNode, items: frozenset[str]) -> Project:
    if node.kind == "record":
        return _record_projector(node.fields, items, trusted=False)
    if node.kind == "array" and node.items is not None:
        element = _value_projector(node.items, items)
        return lambda values: [element(v) for v in values]
    if node.kind == "map" and node.items is not None:
        element = _value_projector(node.items, items)
        return lambda values: {k: element(v) for k, v in values.items()}
    if node.kind == "union":
        branches = [b for b in node.branches if b.kind != "null"]
        if len(branches) == 1:
            only = _value_projector(branches[0], items)
            return lambda value: None if value is None else only(value)
        by_type = {_PYTHON_TYPE.get(b.kind): _value_projector(b, items) for b in branches}

        def project_union(value: Any) -> Any:
            if value is None:
                return None
            sub = by_type.get(type(value))
            return value if sub is None else sub(value)

        return project_union
    return lambda value: value


_PYTHON_TYPE: dict[str, type] = {"record": dict, "map": dict, "array": list}


def _drop_scanner(node: FieldNode) -> Callable[[Any, list[DroppedField]], None]:
    """Reports nested fields of a shareable field that no delivery keeps: other classes and unknown keys."""
    record = node.type.record_branch()
    assert record is not None
    children = record.fields
    names = frozenset(c.name for c in children)
    dropped_children = tuple(c for c in children if c.cls not in _SHAREABLE)
    nested = tuple((c, _drop_scanner(c)) for c in children if c.cls in _SHAREABLE and c.children)
    prefix = _element_prefix(node)

    def scan_record(value: Any, found: list[DroppedField]) -> None:
        if type(value) is not dict:
            return
        for child in dropped_children:
            if value.get(child.name) is not None:
                found.append(DroppedField(child.path, child.cls.value))
        if not value.keys() <= names:
            found.extend(DroppedField(f"{prefix}.{_safe_name(k)}", UNKNOWN) for k in value if k not in names)
        for child, scan in nested:
            inner = value.get(child.name)
            if inner is not None:
                scan(inner, found)

    def scan(value: Any, found: list[DroppedField]) -> None:
        if type(value) is list:
            for element in value:
                scan_record(element, found)
        elif type(value) is dict and record is not None and not _is_map(node.type):
            scan_record(value, found)
        elif type(value) is dict:
            for element in value.values():
                scan_record(element, found)

    return scan


def _is_map(node: TypeNode) -> bool:
    if node.kind == "map":
        return True
    return any(_is_map(b) for b in node.branches)


def _element_prefix(node: FieldNode) -> str:
    """The path prefix of a field's record elements, e.g. ``service_usage[]``."""
    kinds = [node.type.kind, *[b.kind for b in node.type.branches]]
    if "array" in kinds:
        return f"{node.path}[]"
    if "map" in kinds:
        return f"{node.path}{{}}"
    return node.path
