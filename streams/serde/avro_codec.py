"""fastavro encode/decode in the native form: logical types stripped, so timestamps stay epoch millis
and dates epoch days (a quarter of the codec cost saved; see docs/architecture.md, "Performance").

A union that holds two dict kinds (records, maps) is tagged in the native form: its values are
``(branch name, value)``, the branch the decoder took, because a record and a map are both dicts and
the projection must never guess which one it holds. fastavro writes that tuple notation as it is;
on reading, such schemas are decoded with fastavro's named-type tuples and normalised.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Mapping
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streams.errors import SchemaError, SerdeError
from streams.policy.classification import TypeNode, classify


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType`` annotations (the binary encoding is the same)."""
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, Mapping):
        out = {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
        return out
    return schema


def parsing_canonical_form(schema: Mapping[str, Any]) -> str:
    """Avro's Parsing Canonical Form: equal forms read the same bytes the same way."""
    try:
        return str(to_parsing_canonical_form(copy.deepcopy(dict(schema))))
    except Exception as exc:  # fastavro raises several unrelated types for a bad schema
        raise SchemaError(f"invalid Avro schema ({exc.__class__.__name__})") from exc


def _parse(schema: Mapping[str, Any]) -> Any:
    try:
        return fastavro.parse_schema(strip_logical_types(copy.deepcopy(dict(schema))))
    except Exception as exc:  # fastavro raises several unrelated types for a bad schema
        raise SchemaError(f"invalid Avro schema ({exc.__class__.__name__})") from exc


class AvroCodec:
    """Encoder and decoder for one writer schema; with ``reader``, decodes by Avro schema
    resolution into the reader's shape."""

    def __init__(self, schema: Mapping[str, Any], *, reader: Mapping[str, Any] | None = None) -> None:
        self.parsed = _parse(schema)
        self.reader = _parse(reader) if reader is not None else None
        decoded_tree = _tree(reader if reader is not None else schema, _has_tagged)
        written_tree = _tree(schema, _has_union_of_containers)
        self._normalise = _normaliser(decoded_tree) if decoded_tree is not None else None
        # fastavro checks a plain union value against each branch with a validator that does not
        # understand tagged values inside it, and that walks a whole record to choose its branch:
        # every container in a union is written tagged instead (a third less time for a delivery).
        self._denormalise = _denormaliser(written_tree) if written_tree is not None else None

    def decode(self, body: bytes | memoryview) -> Any:
        stream = io.BytesIO(body)
        try:
            if self._normalise is None:
                record = fastavro.schemaless_reader(stream, self.parsed, self.reader)
            else:
                record = self._normalise(
                    fastavro.schemaless_reader(stream, self.parsed, self.reader, return_named_type=True)
                )
        except MemoryError as exc:
            raise SerdeError("the Avro body declares more data than it holds", reason="undecodable_avro") from exc
        except Exception as exc:  # fastavro raises many types on bad bytes (and on resolution failures)
            raise SerdeError("the Avro body does not match its schema", reason="undecodable_avro") from exc
        if stream.tell() != len(body):
            raise SerdeError("the Avro body has trailing bytes", reason="trailing_bytes")
        return record

    def encode(self, record: Mapping[str, Any]) -> bytes:
        stream = io.BytesIO()
        try:
            if self._denormalise is not None:
                record = self._denormalise(record)
            fastavro.schemaless_writer(stream, self.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerdeError("the record does not fit the schema", reason="unencodable_record") from exc
        return stream.getvalue()


Normalise = Callable[[Any], Any]


def _tree(schema: Mapping[str, Any], needed: Callable[[TypeNode], bool]) -> TypeNode | None:
    """The compiled type of a record schema when it ``needed`` a conversion, else None (nothing to do)."""
    try:
        root = classify(schema).root
    except (SchemaError, KeyError, TypeError, ValueError):
        return None
    return root if needed(root) else None


def _denormaliser(node: TypeNode) -> Normalise:
    """The native form in fastavro's tuple notation: each record, map or array held by a union
    names its branch, so fastavro writes the branch it is told and never guesses."""
    kind = node.kind
    if kind in ("record", "array", "map"):
        # A copy: never change the caller's record (a decoded input may be shared).
        return _each_part(node, _denormaliser, copy=True)
    if kind == "union":
        by_name = {b.branch_name: _denormaliser(b) for b in node.branches if b.kind != "null"}
        holder: dict[type, str | None] = {
            dict: next((b.branch_name for b in node.branches if b.kind in ("record", "map")), None),
            list: next((b.branch_name for b in node.branches if b.kind == "array"), None),
        }

        def union(value: Any) -> Any:
            if type(value) is tuple:
                name, inner = value
                return (name, by_name[name](inner))
            name = holder.get(type(value))
            return value if name is None else (name, by_name[name](value))

        return union
    return lambda value: value


def _each_part(node: TypeNode, convert: Callable[[TypeNode], Normalise], *, copy: bool) -> Normalise:
    """Applies ``convert`` of each part's type to the fields of a record, the elements of an array
    or the values of a map."""
    if node.kind == "record":
        subs = [(f.name, convert(f.type)) for f in node.fields if _has_containers(f.type)]
        if not subs:
            return lambda value: value

        def record(value: Any) -> Any:
            out = dict(value) if copy else value
            for name, sub in subs:
                inner = out.get(name)
                if inner is not None:
                    out[name] = sub(inner)
            return out

        return record
    assert node.items is not None
    element = convert(node.items)
    if node.kind == "array":
        return lambda values: [element(v) for v in values]
    return lambda values: {k: element(v) for k, v in values.items()}


def _has_containers(node: TypeNode) -> bool:
    """Whether values of ``node`` can hold a union value that fastavro tags (a named type) or a
    container: the only values either conversion changes."""
    if node.kind in ("record", "array", "map"):
        return True
    return node.kind == "union" and any(
        b.kind in ("record", "enum", "fixed") or _has_containers(b) for b in node.branches
    )


def _has_union(node: TypeNode, which: Callable[[TypeNode], bool]) -> bool:
    """Whether a union ``which`` picks is anywhere inside ``node``."""
    if node.kind == "union" and which(node):
        return True
    if node.kind == "record":
        return any(_has_union(f.type, which) for f in node.fields)
    if node.items is not None:
        return _has_union(node.items, which)
    return any(_has_union(b, which) for b in node.branches)


def _has_tagged(node: TypeNode) -> bool:
    return _has_union(node, lambda union: union.tagged)


def _has_union_of_containers(node: TypeNode) -> bool:
    return _has_union(node, lambda union: any(b.kind in ("record", "array", "map") for b in union.branches))


def _normaliser(node: TypeNode) -> Normalise:
    """Turns fastavro's named-type tuples (every named type in a union comes as ``(name, value)``)
    into the native form: tagged unions keep a tag (``"map"`` for their map branch), others none."""
    kind = node.kind
    if kind in ("record", "array", "map"):
        return _each_part(node, _normaliser, copy=False)  # a fresh decode: changed in place
    if kind == "union":
        by_name = {b.branch_name: _normaliser(b) for b in node.branches if b.kind != "null"}
        plain = {type_of: by_name[b.branch_name] for b in node.branches for type_of in _python_types(b)}
        tagged = node.tagged

        def union(value: Any) -> Any:
            if type(value) is tuple:
                name, inner = value
                converted = by_name[name](inner)
                return (name, converted) if tagged else converted
            converted = plain[type(value)](value) if type(value) in plain else value
            return ("map", converted) if tagged and type(value) is dict else converted

        return union
    return lambda value: value


def _python_types(node: TypeNode) -> tuple[type, ...]:
    return {"map": (dict,), "array": (list,)}.get(node.kind, ())
