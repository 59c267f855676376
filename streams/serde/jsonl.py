"""Turning JSON Lines into Confluent-framed Avro values, rejecting what cannot be encoded (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from streams.errors import SerdeError
from streams.policy.engine import Engine
from streams.serde.avro_codec import AvroCodec
from streams.serde.json_form import JsonForm, JsonFormError
from streams.serde.wire import frame


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON parsers disagree on which of two equal keys wins (``joint_use_stop`` true, then false):
    # a line that says two things is refused, never read one way.
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _DuplicateKey
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys included) holds a lone surrogate, which no
    encoding can carry (JSON allows ``\\ud800`` escapes)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_line(raw: bytes) -> tuple[Any, tuple[str, str] | None]:
    """The JSON value of one input line, or a (rule, detail) pair saying why there is none."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, ("not_utf8", "the line is not valid UTF-8")
    text = text.strip()
    if not text:
        return None, ("empty_line", "the line is empty")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        return None, ("nested_too_deep", "the line nests deeper than the parser allows")
    except _DuplicateKey:
        return None, ("duplicate_key", "an object in the line repeats a key")
    except ValueError:
        return None, ("not_json", "the line is not valid JSON")
    if "\\u" in text and _has_lone_surrogate(value):
        return None, ("lone_surrogate", "a string in the line holds a lone UTF-16 surrogate")
    return value, None


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
