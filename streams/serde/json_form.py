"""The JSON form of records: dates as ISO 8601 dates, timestamps as ISO 8601 date-times with offset.

Converts to and from the native form the engine and the Avro codec use (epoch days / epoch millis).
Only fields with a date or timestamp logical type are touched; everything else passes through and is
type-checked by the engine's validator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from streams.policy.classification import ClassifiedSchema, TypeNode, Violation

_EPOCH_DATE = dt.date(1970, 1, 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Convert = Callable[[Any, str], Any]


class JsonFormError(ValueError):
    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


def _date_in(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise JsonFormError(Violation(path, "wrong_type", "expected an ISO 8601 date string"))
    try:
        return (dt.date.fromisoformat(value) - _EPOCH_DATE).days
    except ValueError:
        raise JsonFormError(Violation(path, "bad_date", "expected an ISO 8601 date, e.g. 1980-04-01")) from None


def _timestamp_in(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise JsonFormError(Violation(path, "wrong_type", "expected an ISO 8601 date-time string"))
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise JsonFormError(Violation(path, "bad_timestamp", "expected an ISO 8601 date-time")) from None
    if parsed.tzinfo is None:
        raise JsonFormError(Violation(path, "bad_timestamp", "the date-time needs a UTC offset"))
    delta = parsed - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _date_out(value: Any, path: str) -> Any:
    try:
        return (_EPOCH_DATE + dt.timedelta(days=value)).isoformat() if type(value) is int else value
    except OverflowError:  # outside the calendar: shown as the number it is
        return value


def _timestamp_out(value: Any, path: str) -> Any:
    if type(value) is not int:
        return value
    try:
        moment = _EPOCH + dt.timedelta(milliseconds=value)
    except OverflowError:
        return value
    return moment.isoformat(timespec="milliseconds")


_LOGICAL_IN: dict[str, Convert] = {"date": _date_in, "timestamp-millis": _timestamp_in}
_LOGICAL_OUT: dict[str, Convert] = {"date": _date_out, "timestamp-millis": _timestamp_out}


def _compile(node: TypeNode, table: dict[str, Convert]) -> Convert | None:
    """A converter for values of ``node``, or None when nothing below it needs converting."""
    if node.logical in table:
        return table[node.logical]
    if node.kind == "record":
        subs = [(f.name, sub) for f in node.fields if (sub := _compile(f.type, table)) is not None]
        if not subs:
            return None

        def convert_record(value: Any, path: str) -> Any:
            if type(value) is not dict:
                return value
            prefix = f"{path}." if path else ""
            out = dict(value)
            for name, sub in subs:
                inner = value.get(name)
                if inner is not None:
                    out[name] = sub(inner, prefix + name)
            return out

        return convert_record
    if node.kind in ("array", "map") and node.items is not None:
        element = _compile(node.items, table)
        if element is None:
            return None
        if node.kind == "array":
            return lambda value, path: [element(v, f"{path}[]") for v in value] if type(value) is list else value
        return lambda value, path: (
            {k: element(v, f"{path}{{}}") for k, v in value.items()} if type(value) is dict else value
        )
    if node.kind == "union":
        branches = [b for b in node.branches if b.kind != "null"]
        if node.tagged:
            return _tagged(node, table)
        converters = [_compile(b, table) for b in branches]
        if all(c is None for c in converters):
            return None
        if len(branches) == 1:
            only = converters[0]
            assert only is not None
            return lambda value, path: None if value is None else only(value, path)
        # At most one branch per Python type (not tagged): the value's type names its branch.
        by_type = {_PYTHON_TYPE.get(b.kind): c for b, c in zip(branches, converters, strict=True) if c is not None}

        def convert_union(value: Any, path: str) -> Any:
            convert = by_type.get(type(value))
            return value if convert is None else convert(value, path)

        return convert_union
    return None


_PYTHON_TYPE: dict[str, type] = {"record": dict, "map": dict, "array": list}


def _tagged(node: TypeNode, table: dict[str, Convert]) -> Convert:
    """A union of several dict kinds: ``{"<branch>": value}`` in JSON (Avro's JSON encoding),
    ``(branch, value)`` in the native form, so that the branch is never guessed from the value."""
    branches = {b.branch_name: _compile(b, table) for b in node.branches if b.kind != "null"}
    to_native = table is _LOGICAL_IN

    def convert_tagged(value: Any, path: str) -> Any:
        if value is None:
            return None
        if to_native:
            if type(value) is not dict or len(value) != 1:
                raise JsonFormError(
                    Violation(path, "untagged_union", 'expected {"<branch>": value} for a union of records and maps')
                )
            ((branch, inner),) = value.items()
            if branch not in branches:
                raise JsonFormError(Violation(path, "unknown_branch", "the tag names no branch of the union"))
            convert = branches[branch]
            return (branch, inner if convert is None or inner is None else convert(inner, path))
        if type(value) is not tuple or len(value) != 2:
            return value
        branch, inner = value
        convert = branches.get(branch)
        return {branch: inner if convert is None or inner is None else convert(inner, path)}

    return convert_tagged


class JsonForm:
    """Converters between the JSON form and the native form of one schema."""

    def __init__(self, schema: ClassifiedSchema) -> None:
        self._in = _compile(schema.root, _LOGICAL_IN)
        self._out = _compile(schema.root, _LOGICAL_OUT)

    def to_native(self, record: Any) -> Any:
        """Raises ``JsonFormError`` (with the path and rule) for a malformed date or timestamp."""
        return record if self._in is None else self._in(record, "")

    def to_json(self, record: Any) -> Any:
        return record if self._out is None else self._out(record, "")
