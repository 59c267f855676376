"""Turning JSON Lines into Confluent-framed Avro values, rejecting what cannot be encoded (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from streams.cli.filter import parse_line
from streams.errors import SerdeError
from streams.policy.engine import Engine
from streams.serde.avro_codec import AvroCodec
from streams.serde.json_form import JsonForm, JsonFormError
from streams.serde.wire import frame


@dataclass(frozen=True, slots=True)
class Encoded:
    line: int
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    reason: str  # "<rule>: <detail>", never a value


def encode_lines(
    lines: Iterable[bytes], *, engine: Engine, form: JsonForm, codec: AvroCodec, schema_id: int
) -> Iterator[Encoded | Rejected]:
    for line_no, raw in enumerate(lines, start=1):
        value, problem = parse_line(raw)
        if problem is not None:
            yield Rejected(line_no, f"{problem[0]}: {problem[1]}")
            continue
        if type(value) is not dict:
            yield Rejected(line_no, "not_an_object: the line is not a JSON object")
            continue
        try:
            native = form.to_native(value)
        except JsonFormError as exc:
            yield Rejected(line_no, f"schema_violation: {exc.violation}")
            continue
        violation = engine.validate(native)
        if violation is not None:
            yield Rejected(line_no, f"schema_violation: {violation}")
            continue
        try:
            body = codec.encode(native)
        except SerdeError as exc:
            yield Rejected(line_no, f"{exc.reason}: {exc}")
            continue
        yield Encoded(line_no, native["customer_id"].encode("utf-8"), frame(schema_id, body))
