"""Poison input on an ingest topic: each lands in dead letters with its reason; the worker goes on."""

from __future__ import annotations

import json
import os

import pytest
from confluent_kafka import Producer

from streams.messages import H_DETAIL, H_REASON
from streams.policy.classification import load_schema
from streams.serde.json_form import JsonForm
from streams.serde.registry import Registry
from streams.serde.wire import frame
from streams.settings import Settings
from tests.records import make_json_records
from tests.streaming.helpers import audit_events, read_topic, running_worker, setup_topics

pytestmark = pytest.mark.kafka


def test_poison_messages_become_dead_letters(kafka: Settings, unique: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"p{unique}"})
    topology = setup_topics(settings, partitions=1)
    topic = topology.ingest("jcom")
    classified = load_schema(settings.schema_dir / "customer_record.v1.avsc")
    registry = Registry(settings.registry_conf())
    schema_id = registry.register(f"{topic}-value", dict(classified.raw))
    codec = registry.codec(schema_id)
    form = JsonForm(classified)
    good = form.to_native(next(r for r in make_json_records(4, seed=1) if r["source_company"] == "jcom"))
    good_value = frame(schema_id, codec.encode(good))
    impostor = dict(good, source_company="jcom-insurance")
    key = good["customer_id"].encode()

    cases: list[tuple[bytes | None, bytes | None, str]] = [
        (key, os.urandom(64), "bad_magic_byte"),
        (key, b"\x01" + good_value[1:], "bad_magic_byte"),
        (key, frame(987_654_321, codec.encode(good)), "unknown_schema_id"),
        (key, good_value[: len(good_value) // 2], "undecodable_avro"),
        (key, b"", "empty_value"),
        (key, None, "empty_value"),
        (key, b"\x00\x00", "truncated_header"),
        (None, good_value, "null_key"),
        (b"someone-else", good_value, "key_mismatch"),
        (key, b"\x00" + b"\x00" * 4 + b"x" * 5_000_000, "value_too_large"),
        (key, frame(schema_id, codec.encode(impostor)), "source_mismatch"),
        (key, good_value + b"\x00\x01", "trailing_bytes"),
    ]
    producer = Producer({**settings.kafka_common(), "message.max.bytes": 8_388_608})
    for k, value, _ in cases:
        producer.produce(topic, key=k, value=value)
    producer.produce(topic, key=key, value=good_value)  # the worker must still process good input after
    assert producer.flush(30) == 0

    with running_worker(settings):
        events = audit_events(settings, topology, len(cases) + 1)
    assert [e["reason"] for e in events] == [reason for _, _, reason in cases] + ["shared"]

    dead = read_topic(settings, topology.dead_letters("jcom"), expected=len(cases))
    assert [dict(m.headers())[H_REASON].decode() for m in dead] == [reason for _, _, reason in cases]
    for message, (_, value, _) in zip(dead, cases, strict=True):
        assert message.value() == value  # the raw copy, unchanged
        assert good["name"].encode() not in dict(message.headers())[H_DETAIL]
    assert json.dumps(events).count(good["name"]) == 0
    assert read_topic(settings, topology.dead_letters("jcom-insurance"), expected=None, quiet=1) == []
