"""Poison input through the real batch loop and ingest processor, without a broker: each input lands
in the source's dead letters with its reason and raw copy, and the good record after them is shared."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os

from streams.messages import H_DETAIL, H_REASON, InMessage, Run
from streams.policy.loader import PolicySet
from streams.policy.pseudonym import SubjectKeys
from streams.processors.ingest import Deciding, Processor
from streams.runtime.loop import BatchLoop
from streams.runtime.transaction import ErrorPolicy
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedSchemas
from streams.serde.json_form import JsonForm
from streams.serde.wire import frame
from streams.settings import PROJECT_ROOT
from streams.topology import Topology
from tests.memory_registry import MemoryRegistry
from tests.records import make_json_records
from tests.runtime.memory import MemoryBroker, MemoryTransport

T = Topology("p")


def test_poison_messages_become_dead_letters_and_the_stream_goes_on(policies: PolicySet) -> None:
    governed = GovernedSchemas.load(PROJECT_ROOT / "schemas")
    raw = dict(governed.versions[0].classified.raw)
    registry = MemoryRegistry()
    schema_id = registry.register(f"{T.ingest('jcom')}-value", raw)
    codec = AvroCodec(raw)
    form = JsonForm(governed.versions[0].classified)
    good = form.to_native(next(r for r in make_json_records(4, seed=1) if r["source_company"] == "jcom"))
    good_value = frame(schema_id, codec.encode(good))
    impostor = dict(good, source_company="jcom-insurance")
    key = good["customer_id"].encode()
    cases: list[tuple[bytes | None, bytes | None, str]] = [
        (key, os.urandom(64).replace(b"\x00", b"\x01"), "bad_magic_byte"),
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
        (key, frame(schema_id, codec.encode(dict(good, updated_at=2**62))), "schema_violation"),
    ]
    broker = MemoryBroker(topic=T.ingest("jcom"), partitions=1)
    log = broker.logs[(T.ingest("jcom"), 0)]
    for k, value, _ in [*cases, (key, good_value, "shared")]:
        log.append(InMessage(T.ingest("jcom"), 0, len(log), k, value, 0))
    processor = Processor(
        Run(T, SubjectKeys(b"poison-test-subject-key")),
        Deciding(policies),
        governed,
        registry,
        now=lambda: dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
    )
    loop = BatchLoop(MemoryTransport(broker, batch_size=5), processor, policy=ErrorPolicy(backoff_first_seconds=0))
    asyncio.run(loop.run(max_idle_seconds=0))

    events = [json.loads(m.value or b"") for m in broker.outputs if m.topic == T.audit]
    assert [e["reason"] for e in events] == [reason for _, _, reason in cases] + ["shared"]
    dead = [m for m in broker.outputs if m.topic == T.dead_letters("jcom")]
    assert [dict(m.headers)[H_REASON].decode() for m in dead] == [reason for _, _, reason in cases]
    for message, (_, value, _) in zip(dead, cases, strict=True):
        assert message.value == value  # the raw copy, unchanged
        assert good["name"].encode() not in dict(message.headers)[H_DETAIL]
    assert json.dumps(events).count(good["name"]) == 0
    assert [m.topic for m in broker.outputs if m.topic.startswith("p.deliver.")] == [T.deliver("jcom-insurance")]
    assert broker.committed == {(T.ingest("jcom"), 0): len(cases) + 1}
