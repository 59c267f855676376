"""Type-directed projection of records: which fields a recipient keeps, and which fields are dropped.

Everything here follows the governed schema's types, never the shape of the value: a union is
projected by the branch its value belongs to. In the native form a union holding two dict kinds
(records, maps) carries its branch as ``(branch name, value)``, as the decoder reported it; any
other union has at most one branch per Python type, so the type names the branch exactly.
Pure: builds closures once per schema and plan, runs them per record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.policy.classification import SHAREABLE_CLASSES, UNKNOWN, FieldNode, TypeNode
from streams.policy.decision import DroppedField

Project = Callable[[Any], Any]
Keep = Callable[[FieldNode], bool]
Scan = Callable[[Any, list[DroppedField]], None]

_DICT_KINDS = ("record", "map")


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


def record_projector(fields: tuple[FieldNode, ...], keep: Keep, *, trusted: bool) -> Project:
    """Keeps the fields ``keep`` accepts, at every depth. A record is always rebuilt, so keys that
    are not in the schema never pass; ``trusted`` (decoded) subtrees that are kept whole pass as is."""
    return projector_of([(f.name, value_projector(f.type, keep, trusted=trusted)) for f in fields if keep(f)])


def value_projector(node: TypeNode, keep: Keep, *, trusted: bool) -> Project | None:
    """The projection of one value of ``node``; None when the value passes as it is."""
    kind = node.kind
    if kind == "record":
        if trusted and fully_kept(node, keep):
            return None
        return record_projector(node.fields, keep, trusted=trusted)
    if kind in ("array", "map") and node.items is not None:
        element = value_projector(node.items, keep, trusted=trusted)
        if element is None:
            return None
        if kind == "array":
            return lambda values: [element(v) for v in values]
        return lambda values: {k: element(v) for k, v in values.items()}
    if kind == "union":
        return _union_projector(node, keep, trusted=trusted)
    return None


def _union_projector(node: TypeNode, keep: Keep, *, trusted: bool) -> Project | None:
    branches = [b for b in node.branches if b.kind != "null"]
    if node.tagged:
        subs = {b.branch_name: value_projector(b, keep, trusted=trusted) for b in branches}
        if all(sub is None for sub in subs.values()):
            return None

        def project_tagged(value: Any) -> Any:
            if value is None:
                return None
            branch, inner = value
            sub = subs[branch]
            return value if sub is None else (branch, sub(inner))

        return project_tagged
    by_type: dict[type, Project] = {}
    for branch in branches:
        sub = value_projector(branch, keep, trusted=trusted)
        if sub is not None:
            by_type[dict if branch.kind in _DICT_KINDS else list] = sub
    if not by_type:
        return None
    if len(branches) == 1:
        (only,) = by_type.values()
        return lambda value: None if value is None else only(value)

    def project_union(value: Any) -> Any:
        sub = by_type.get(type(value))
        return value if sub is None else sub(value)

    return project_union


def fully_kept(node: TypeNode, keep: Keep) -> bool:
    """Whether every field at every depth of ``node`` is kept: a decoded value passes unchanged."""
    if node.kind == "record":
        return all(keep(f) and fully_kept(f.type, keep) for f in node.fields)
    if node.kind in ("array", "map") and node.items is not None:
        return fully_kept(node.items, keep)
    return all(fully_kept(b, keep) for b in node.branches)


def shareable(field: FieldNode) -> bool:
    return field.cls in SHAREABLE_CLASSES


def unknown_path(prefix: str, position: int) -> str:
    """An unknown key is reported by its position in its object, never by its name (a name can carry
    data, e.g. ``callee_09012345678``)."""
    tail = f"<unknown@{position}>"
    return f"{prefix}.{tail}" if prefix else tail


def drop_scanner(node: TypeNode, path: str, *, trusted: bool, unknown_only: bool = False) -> Scan | None:
    """Reports what no delivery keeps inside a value of ``node``: present fields of a class that is
    never shared (by path and class), and, for untrusted input, keys the schema does not know (by
    position). ``unknown_only`` scans a dropped field's subtree for unknown keys alone. None: nothing
    to report for any value."""
    kind = node.kind
    if kind == "record":
        return _record_scanner(node, path, trusted=trusted, unknown_only=unknown_only)
    if kind in ("array", "map") and node.items is not None:
        suffix = "[]" if kind == "array" else "{}"
        element = drop_scanner(node.items, f"{path}{suffix}", trusted=trusted, unknown_only=unknown_only)
        if element is None:
            return None
        if kind == "array":

            def scan_array(value: Any, found: list[DroppedField]) -> None:
                if type(value) is list:
                    for inner in value:
                        if inner is not None:
                            element(inner, found)

            return scan_array

        def scan_map(value: Any, found: list[DroppedField]) -> None:
            if type(value) is dict:
                for inner in value.values():
                    if inner is not None:
                        element(inner, found)

        return scan_map
    if kind == "union":
        branches = [b for b in node.branches if b.kind != "null"]
        if node.tagged:
            subs = {b.branch_name: drop_scanner(b, path, trusted=trusted, unknown_only=unknown_only) for b in branches}

            def scan_tagged(value: Any, found: list[DroppedField]) -> None:
                if type(value) is tuple and len(value) == 2:
                    sub = subs.get(value[0])
                    if sub is not None and value[1] is not None:
                        sub(value[1], found)

            return scan_tagged if any(s is not None for s in subs.values()) else None
        by_type: dict[type, Scan] = {}
        for branch in branches:
            sub = drop_scanner(branch, path, trusted=trusted, unknown_only=unknown_only)
            if sub is not None:
                by_type[dict if branch.kind in _DICT_KINDS else list] = sub
        if not by_type:
            return None

        def scan_union(value: Any, found: list[DroppedField]) -> None:
            sub = by_type.get(type(value))
            if sub is not None:
                sub(value, found)

        return scan_union
    return None


def _record_scanner(node: TypeNode, path: str, *, trusted: bool, unknown_only: bool) -> Scan | None:
    names = frozenset(f.name for f in node.fields)
    dropped = () if unknown_only else tuple(f for f in node.fields if not shareable(f))
    nested: list[tuple[str, Scan]] = []
    for f in node.fields:
        if unknown_only or not shareable(f):
            # A dropped field's own content is not reported field by field, but keys the schema does
            # not know are, wherever they are: they may be a producer's mistake (e.g. a consent flag).
            sub = None if trusted else drop_scanner(f.type, f.path, trusted=False, unknown_only=True)
        else:
            sub = drop_scanner(f.type, f.path, trusted=trusted)
        if sub is not None:
            nested.append((f.name, sub))
    report_unknown = not trusted
    if not dropped and not nested and not report_unknown:
        return None
    marks = tuple((f.name, DroppedField(f.path, f.cls.value)) for f in dropped)

    def scan_record(value: Any, found: list[DroppedField]) -> None:
        if type(value) is not dict:
            return
        for name, mark in marks:
            if value.get(name) is not None:
                found.append(mark)
        if report_unknown and not value.keys() <= names:
            found.extend(
                DroppedField(unknown_path(path, position), UNKNOWN)
                for position, key in enumerate(value, start=1)
                if key not in names
            )
        for name, sub in nested:
            inner = value.get(name)
            if inner is not None:
                sub(inner, found)

    return scan_record
