"""Avro encode/decode in the native form, by cavro (compiled per schema: about 2.3x fastavro's
speed on the customer record either way, the largest part of a worker's time per record; see
docs/benchmarks.md). Logical types are stripped, so timestamps stay epoch millis and dates epoch
days, as the policy engine and the canary expect them.

A union that holds two dict kinds (records, maps) is tagged in the native form: its values are
``(branch name, value)``, the branch the decoder took, because a record and a map are both dicts and
the projection must never guess which one it holds. Such schemas are decoded with cavro's type
tuples for ambiguous unions and normalised, and encoded naming the branch of each container in a union.

Schema-only helpers (logical types, Parsing Canonical Form) are in ``streams.serde.avro_schema``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cavro

from streams.errors import SchemaError, SerdeError
from streams.policy.classification import NAMED_KINDS, TypeNode, classify
from streams.serde.avro_schema import strip_logical_types

# What every codec is built with: records decode to plain dicts; a union value may name its branch
# as ``(name, value)`` (what the denormaliser writes); a field a record leaves out is written as null
# where its type allows (a projection leaves out what it does not deliver); names follow Avro's rules.
_OPTIONS = cavro.DEFAULT_OPTIONS.replace(
    record_decodes_to_dict=True, allow_tuple_notation=True, missing_values_can_be_null=True
)
_TAGGING_OPTIONS = _OPTIONS.replace(union_decodes_to=cavro.UnionDecodeOption.TYPE_TUPLE_ALWAYS)
# Reading one more byte after a record tells whether the body ends there (cavro's readers keep their
# position to themselves).
_ONE_BYTE = cavro.Schema({"type": "fixed", "size": 1, "name": "trailing"})


def _parse(schema: Mapping[str, Any], options: Any) -> Any:
    try:
        return cavro.Schema(strip_logical_types(schema), options=options, parse_json=False)
    except Exception as exc:  # cavro raises several unrelated types for a bad schema
        raise SchemaError(f"invalid Avro schema ({exc.__class__.__name__})") from exc


class AvroCodec:
    """Encoder and decoder for one writer schema; with ``reader``, decodes by Avro schema
    resolution into the reader's shape. ``from_producers``: bodies come from producers, so a schema
    whose arrays could declare endless items is refused (see ``_refuse_endless_arrays``)."""

    def __init__(
        self, schema: Mapping[str, Any], *, reader: Mapping[str, Any] | None = None, from_producers: bool = False
    ) -> None:
        decoded_tree = _tree(reader if reader is not None else schema, _has_tagged)
        written_tree = _tree(schema, _has_tagged)
        options = _OPTIONS if decoded_tree is None else _TAGGING_OPTIONS
        self.writer = _parse(schema, options)
        if from_producers:
            _refuse_endless_arrays(self.writer)
        if reader is None:
            self._reading = self.writer
        else:
            parsed_reader = _parse(reader, options)
            try:
                self._reading = parsed_reader.reader_for_writer(self.writer)
            except Exception as exc:  # cavro: the writer cannot be read as the reader
                raise SchemaError(f"the writer schema cannot be resolved ({exc.__class__.__name__})") from exc
        self._normalise = _normaliser(decoded_tree) if decoded_tree is not None else None
        # A schema with a tagged union is written in cavro's tuple notation (its values name their
        # branch). Elsewhere a union holds one dict kind at most, and cavro takes a dict or a list
        # as it is: naming the branch there (a copy of the record) costs more than cavro's own
        # choice, for the same bytes.
        self._denormalise = _denormaliser(written_tree) if written_tree is not None else None

    def decode(self, body: bytes | memoryview) -> Any:
        stream = cavro.MemoryReader(body)
        try:
            record = self._reading.binary_read(stream)
        except MemoryError as exc:
            raise SerdeError("the Avro body declares more data than it holds", reason="undecodable_avro") from exc
        except Exception as exc:  # cavro raises many types on bad bytes (EOF, unicode, union index)
            raise SerdeError("the Avro body does not match its schema", reason="undecodable_avro") from exc
        try:
            _ONE_BYTE.binary_read(stream)
        except EOFError:
            return record if self._normalise is None else self._normalise(record)
        raise SerdeError("the Avro body has trailing bytes", reason="trailing_bytes")

    def encode(self, record: Mapping[str, Any]) -> bytes:
        try:
            if self._denormalise is not None:
                record = self._denormalise(record)
            return bytes(self.writer.binary_encode(record))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerdeError("the record does not fit the schema", reason="unencodable_record") from exc


Normalise = Callable[[Any], Any]


def _refuse_endless_arrays(parsed: Any) -> None:
    """An array of items that take no bytes (null, an empty fixed, a record of such) lets a body of a
    few bytes declare 2**62 of them, which a decoder would read (or skip) for ever: a worker stopped by
    one message. (A delivery schema may hold one, an array of records whose fields were all dropped:
    only the pipeline writes those.)"""
    for avro_type in parsed.type.walk_types(set()):
        if isinstance(avro_type, cavro.ArrayType) and _takes_no_bytes(avro_type.item_type, frozenset()):
            raise SchemaError("an array's items take no bytes: a body could declare endless items")


def _takes_no_bytes(avro_type: Any, records: frozenset[int]) -> bool:
    if isinstance(avro_type, cavro.NullType):
        return True
    if isinstance(avro_type, cavro.FixedType):
        return bool(avro_type.size == 0)
    if isinstance(avro_type, cavro.RecordType) and id(avro_type) not in records:
        inside = records | {id(avro_type)}
        return all(_takes_no_bytes(f.type, inside) for f in avro_type.fields)
    return False


def _tree(schema: Mapping[str, Any], needed: Callable[[TypeNode], bool]) -> TypeNode | None:
    """The compiled type of a record schema when it ``needed`` a conversion, else None (nothing to do)."""
    try:
        root = classify(schema).root
    except (SchemaError, KeyError, TypeError, ValueError):
        return None
    return root if needed(root) else None


def _denormaliser(node: TypeNode) -> Normalise:
    """The native form in cavro's tuple notation: a record or map held by a union names its branch,
    so cavro writes the branch it is told and never guesses (an array needs no name: a union holds
    one array at most, and cavro takes a list as it is)."""
    kind = node.kind
    if kind in ("record", "array", "map"):
        # A copy: never change the caller's record (a decoded input may be shared).
        return _each_part(node, _denormaliser, copy=True, changes=_has_containers)
    if kind == "union":
        _refuse_tuples_an_array_takes(node)
        by_name = {b.branch_name: _denormaliser(b) for b in node.branches if b.kind != "null"}
        named = {b.branch_name for b in node.branches if b.kind == "map" or b.kind in NAMED_KINDS}
        mapping = next((b.branch_name for b in node.branches if b.kind in ("record", "map")), None)
        array = next((by_name[b.branch_name] for b in node.branches if b.kind == "array"), None)

        def union(value: Any) -> Any:
            if type(value) is tuple:  # a tagged union's value: only a named type or a map keeps it
                name, inner = value
                return (name, by_name[name](inner)) if name in named else by_name[name](inner)
            if type(value) is dict and mapping is not None:
                return (mapping, by_name[mapping](value))
            if type(value) is list and array is not None:
                return array(value)
            return value

        return union
    return lambda value: value


def _refuse_tuples_an_array_takes(union: TypeNode) -> None:
    """cavro takes a tuple for an array when the array's items fit both its parts, before it reads
    the tuple as a branch's name and value: a union where that can happen is refused, never written
    wrong. (An array of strings beside an enum of a tagged union, or an array of a union of strings
    and maps beside a record or map.)"""
    arrays = [b.items for b in union.branches if b.kind == "array" and b.items is not None]
    if not arrays:
        return
    named = {b.kind for b in union.branches} & {"record", "map", "enum"}
    for items in arrays:
        kinds = {b.kind for b in items.branches} if items.kind == "union" else {items.kind}
        takes_name = bool(kinds & {"string", "enum"})
        takes_dict = bool(kinds & {"record", "map"})
        if takes_name and ((named & {"record", "map"} and takes_dict) or (union.tagged and named & {"enum"})):
            raise SchemaError(
                "a union holds an array that could take a named branch's value; it cannot be written unambiguously"
            )


def _each_part(
    node: TypeNode, convert: Callable[[TypeNode], Normalise], *, copy: bool, changes: Callable[[TypeNode], bool]
) -> Normalise:
    """Applies ``convert`` of each part's type to the fields of a record, the elements of an array
    or the values of a map (of a record, only the fields whose type ``changes``)."""
    if node.kind == "record":
        subs = [(f.name, convert(f.type)) for f in node.fields if changes(f.type)]
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


def _normaliser(node: TypeNode) -> Normalise:
    """Turns cavro's type tuples (every union value comes as ``(type name, value)``) into the native
    form: a tagged union's values keep their branch's name, other unions' values come plain."""
    kind = node.kind
    if kind in ("record", "array", "map"):
        return _each_part(node, _normaliser, copy=False, changes=_holds_a_union)  # a fresh decode: changed in place
    if kind == "union":
        by_name = {b.branch_name: _normaliser(b) for b in node.branches if b.kind != "null"}
        tagged = node.tagged

        def union(value: Any) -> Any:
            name, inner = value
            if inner is None:
                return None
            converted = by_name[name](inner)
            return (name, converted) if tagged else converted

        return union
    return lambda value: value


def _holds_a_union(node: TypeNode) -> bool:
    return _has_union(node, lambda union: True)
