"""What `jointuse consume` prints of a message: Avro in the wire format decoded with its schema,
the project's JSON topics (audit, notices, incidents) as their JSON, anything else as an error."""

from __future__ import annotations

from typing import Any

import orjson

from streams.kafka.company_client import printable
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import governed_version
from streams.serde.json_form import JsonForm
from streams.serde.wire import frame
from streams.settings import PROJECT_ROOT

SCHEMA = {"type": "record", "name": "R", "fields": [{"name": "customer_id", "type": "string"}]}


class _Message:
    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes:
        return b"jcom:C1"

    def headers(self) -> list[tuple[str, bytes]]:
        return [("jointuse-purposes", b"jointuse.billing")]

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


class _Registry:
    def codec(self, schema_id: int) -> AvroCodec:
        assert schema_id == 5
        return AvroCodec(SCHEMA)


def _printed(value: bytes | None) -> dict[str, Any]:
    form = JsonForm(governed_version(PROJECT_ROOT / "schemas").classified)
    return printable(_Message(value), _Registry(), form)  # type: ignore[arg-type]


def test_avro_json_topics_tombstones_and_garbage() -> None:
    assert _printed(frame(5, AvroCodec(SCHEMA).encode({"customer_id": "C1"})))["record"] == {"customer_id": "C1"}
    event = {"subject": "s", "status": "shared"}
    assert _printed(orjson.dumps(event))["record"] == event  # the audit topic is JSON
    assert _printed(None)["record"] is None  # a tombstone
    garbage = _printed(b"\xff\xfe not json")
    assert garbage["error"] == "neither_avro_nor_json" and "record" not in garbage
    assert _printed(b"\x00\x01")["error"]  # framed, but short: the serde's reason
    assert _printed(orjson.dumps(event))["headers"] == {"jointuse-purposes": "jointuse.billing"}
