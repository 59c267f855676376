"""The Avro codec (cavro underneath): the native form round trips, hostile bytes are dead letters,
and schemas that could make a worker read for ever or write a value on the wrong branch are refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.devtools.synthetic import Generator
from streams.errors import SchemaError, SerdeError
from streams.policy.classification import classify, delivery_schema
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedSchemas
from streams.serde.json_form import JsonForm
from streams.settings import PROJECT_ROOT
from tests.avro_strategies import schemas, values

GOVERNED = GovernedSchemas.load(PROJECT_ROOT / "schemas")
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _varint(number: int) -> bytes:
    zigzag = (number << 1) ^ (number >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_the_native_form_round_trips_through_generated_schemas_and_their_deliveries(data: Any) -> None:
    """Records, arrays, maps, unions of records and maps (tagged), named types across namespaces."""
    raw = data.draw(schemas())
    for schema in (raw, delivery_schema(classify(raw))):
        codec = AvroCodec(schema)
        record = data.draw(values(classify(schema).root, marked=False))
        body = codec.encode(record)
        assert codec.decode(body) == record
        assert codec.encode(codec.decode(body)) == body


@settings(max_examples=300, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_extreme_values_of_the_governed_versions_encode_or_are_refused_with_a_serde_error(data: Any) -> None:
    version = data.draw(st.sampled_from(GOVERNED.versions))
    record = data.draw(values(version.classified.root, marked=False, extreme=True))
    try:
        body = version.codec.encode(record)
    except SerdeError as exc:
        assert exc.reason == "unencodable_record"
        return
    assert version.codec.decode(body) == record


@settings(max_examples=400, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_mutated_bodies_decode_or_are_dead_letters_never_anything_else(data: Any) -> None:
    """Flipped, cut, inserted bytes and huge declared lengths: a SerdeError or a value, nothing else."""
    version = data.draw(st.sampled_from(GOVERNED.versions))
    body = bytearray(version.codec.encode(data.draw(values(version.classified.root, marked=False))))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        edit = data.draw(st.sampled_from(["flip", "cut", "insert", "huge"]))
        if edit == "flip" and at < len(body):
            body[at] = data.draw(st.integers(0, 255))
        elif edit == "cut":
            del body[at:]
        elif edit == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            body[at:at] = _varint(data.draw(st.sampled_from([2**31, 2**62, -(2**62), 10**9])))
    try:
        version.codec.decode(bytes(body))
    except SerdeError as exc:
        assert exc.reason in ("undecodable_avro", "trailing_bytes")


def test_a_body_with_trailing_bytes_and_a_cut_body_are_told_apart() -> None:
    version = GOVERNED.latest
    record = next(r for _, r in Generator(seed=3).records(5) if isinstance(r, dict))
    body = version.codec.encode(JsonForm(version.classified).to_native(record))
    with pytest.raises(SerdeError) as trailing:
        version.codec.decode(body + b"\x00")
    assert trailing.value.reason == "trailing_bytes"
    with pytest.raises(SerdeError) as cut:
        version.codec.decode(body[:-1])
    assert cut.value.reason == "undecodable_avro"


def test_a_union_index_past_the_branches_is_a_dead_letter() -> None:
    codec = AvroCodec({"type": "record", "name": "R", "fields": [{"name": "u", "type": ["null", "string"]}]})
    for index in (2, 3, -1, 2**40):
        with pytest.raises(SerdeError):
            codec.decode(_varint(index) + b"\x02a")


@pytest.mark.parametrize(
    "items",
    [
        "null",
        {"type": "fixed", "name": "Nothing", "size": 0},
        {"type": "record", "name": "Empty", "fields": []},
        {"type": "record", "name": "Nulls", "fields": [{"name": "a", "type": "null"}]},
    ],
)
def test_a_writer_with_an_array_of_items_that_take_no_bytes_is_refused(items: Any) -> None:
    """Five bytes could declare 2**62 such items: reading (or skipping) them would stop the worker."""
    writer = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "long"}, {"name": "junk", "type": {"type": "array", "items": items}}],
    }
    reader = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    with pytest.raises(SchemaError, match="take no bytes"):
        AvroCodec(writer, reader=reader, from_producers=True)
    with pytest.raises(SchemaError, match="take no bytes"):
        AvroCodec(writer, from_producers=True)
    AvroCodec(writer)  # the pipeline's own (a delivery's array of records whose fields were all dropped)


def test_a_writer_with_endless_items_resolves_into_no_governed_version() -> None:
    writer = {
        **GOVERNED.latest.classified.raw,
        "fields": [
            *GOVERNED.latest.classified.raw["fields"],
            {"name": "junk", "type": {"type": "array", "items": "null"}, "default": []},
        ],
    }
    assert GOVERNED.reading(writer) is None


def test_a_union_where_an_array_could_take_a_named_branchs_value_is_refused() -> None:
    """cavro would write the enum's (name, symbol) as an array of two strings."""
    enum = {"type": "enum", "name": "E", "symbols": ["A"]}
    record = {"type": "record", "name": "S", "fields": [{"name": "x", "type": "long"}]}
    mapped = {"type": "map", "values": "long"}
    union = ["null", record, mapped, enum, {"type": "array", "items": "string"}]
    with pytest.raises(SchemaError, match="unambiguously"):
        AvroCodec({"type": "record", "name": "R", "fields": [{"name": "u", "type": union}]})


def test_a_tagged_unions_branches_are_named_and_written_on_the_branch_named() -> None:
    record = {"type": "record", "name": "S", "namespace": "n", "fields": [{"name": "x", "type": "long"}]}
    union = ["null", record, {"type": "map", "values": "long"}, {"type": "array", "items": "long"}]
    codec = AvroCodec({"type": "record", "name": "R", "fields": [{"name": "u", "type": union}]})
    for value in [None, ("n.S", {"x": 1}), ("map", {"x": 1}), ("array", [1, 2])]:
        assert codec.decode(codec.encode({"u": value})) == {"u": value}
    assert codec.decode(codec.encode({"u": [1, 2]})) == {"u": ("array", [1, 2])}
    # The record's keys would fit the map too: the name decides, not a guess.
    assert codec.encode({"u": ("n.S", {"x": 1})})[0:1] == _varint(1)
    assert codec.encode({"u": ("map", {"x": 1})})[0:1] == _varint(2)


def test_a_field_left_out_is_written_as_null_where_its_type_allows_and_refused_elsewhere() -> None:
    inner = {"type": "record", "name": "In", "fields": [{"name": "x", "type": ["null", "long"]}]}
    fields = [{"name": "a", "type": ["null", inner]}, {"name": "b", "type": "long"}]
    codec = AvroCodec({"type": "record", "name": "R", "fields": fields})
    assert codec.decode(codec.encode({"a": {}, "b": 1})) == {"a": {"x": None}, "b": 1}
    with pytest.raises(SerdeError) as refused:
        codec.encode({"a": None})
    assert refused.value.reason == "unencodable_record"
