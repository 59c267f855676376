"""A producer switches from v1 to the backward-compatible v2 mid-stream: nothing is lost, and v2's new
fields are classified like any other (the new item is delivered, the new secrecy field is not)."""

from __future__ import annotations

import json

import pytest

from streams.kafka.company_client import produce_lines
from streams.messages import H_SOURCE
from streams.serde.registry import Registry
from streams.serde.wire import unframe
from streams.settings import Settings
from tests.records import make_json_records
from tests.runtime.helpers import audit_events, read_topic, running_worker, setup_topics

pytestmark = pytest.mark.kafka


def test_v1_then_v2_mid_stream(kafka: Settings, unique: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"e{unique}"})
    topology = setup_topics(settings, partitions=2)
    records = [r for r in make_json_records(200, seed=21) if r["source_company"] == "jcom"]
    for r in records:
        r["consent"]["joint_use_stop"] = False
    v1, v2 = records[:50], records[50:]
    for r in v2:
        r["preferred_language"] = "ja"
        r["voicemail_transcripts"] = ["SECRET-voicemail"]
    with running_worker(settings):
        first = produce_lines(
            settings,
            "jcom",
            [json.dumps(r).encode() for r in v1],
            schema_version="1",
        )
        second = produce_lines(
            settings,
            "jcom",
            [json.dumps(r).encode() for r in v2],
            schema_version="2",
        )
        assert (first.produced, second.produced) == (len(v1), len(v2))
        events = audit_events(settings, topology, len(records))
    assert len(events) == len(records)
    assert len({e["schema_id"] for e in events}) == 2
    v2_events = [
        e for e in events if {"path": "voicemail_transcripts", "class": "secrecy_of_communications"} in e["dropped"]
    ]
    assert len(v2_events) == len(v2)
    deliveries = read_topic(settings, topology.deliver("jcom-insurance"), expected=len(records))
    assert len(deliveries) == len(records)
    assert all(dict(m.headers())[H_SOURCE] == b"jcom" for m in deliveries)
    assert sum(b"SECRET" in m.value() for m in deliveries) == 0
    registry = Registry(settings.registry_conf())
    decoded = [registry.codec(unframe(m.value())[0]).decode(unframe(m.value())[1]) for m in deliveries]
    assert sum(d.get("preferred_language") == "ja" for d in decoded) == len(v2)  # the new item is delivered
    assert all("voicemail_transcripts" not in d for d in decoded)
