"""Deciding processes (``JOINTUSE_DECIDE_PROCESSES``): children decide a batch as the worker itself
would, in its order, under the rights view's state the worker hands them; their start-up failures
are one clear line. Their deaths and SIGKILLs are in tests/runtime/test_crash.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from streams.devtools.synthetic import Generator, Mix
from streams.errors import RegistryError
from streams.messages import InMessage, Outcome
from streams.policy.classification import load_schema
from streams.policy.decision import Reason, Status
from streams.policy.loader import load_policies
from streams.serde.avro_codec import AvroCodec
from streams.serde.json_form import JsonForm
from streams.serde.registry import Registry
from streams.serde.wire import frame
from streams.settings import PROJECT_ROOT, Settings
from streams.topology import Topology
from streams.worker.deciders import MIN_CHUNK, DecidingProcesses, _chunks
from streams.worker.parts import pipeline_processor

SCHEMA = PROJECT_ROOT / "schemas" / "customer_record.v1.avsc"


def _inputs(count: int) -> list[InMessage]:
    return [InMessage("t.ingest.jcom", 0, offset, b"k", b"v", 0) for offset in range(count)]


@pytest.mark.parametrize("count", [1, MIN_CHUNK - 1, MIN_CHUNK * 2 - 1, MIN_CHUNK * 2, 1000, 1001])
@pytest.mark.parametrize("processes", [1, 2, 3])
def test_a_batch_is_split_in_order_into_chunks_worth_sending(count: int, processes: int) -> None:
    batch = _inputs(count)
    chunks = _chunks(batch, processes)
    assert [m for chunk in chunks for m in chunk] == batch  # joined, the batch in its order
    assert 1 <= len(chunks) <= processes
    assert len(chunks) == 1 or min(len(chunk) for chunk in chunks) >= MIN_CHUNK - 1


def _comparable(outcome: Outcome) -> tuple[object, ...]:
    """What must not depend on where an input was decided: its status and reason, who receives which
    purposes, what was dropped, and each delivery's topic, key, value and headers (the audit event,
    the contributions and the provision records carry the moment of deciding)."""
    deliveries = tuple(m for m in outcome.messages if ".deliver." in m.topic or ".dead-letters." in m.topic)
    return (
        outcome.status,
        outcome.reason,
        outcome.source,
        dict(outcome.deliveries),
        outcome.dropped,
        outcome.leaks,
        outcome.provisions,
        outcome.provisions_withheld,
        tuple(m.topic for m in outcome.messages),
        deliveries,
    )


def _messages(settings: Settings, count: int) -> list[InMessage]:
    """``count`` generated inputs, framed under the registry's id of the first governed schema,
    with a few that are dead letters before any decision (another topic, a short value, no key)."""
    topology = Topology(settings.topic_prefix)
    registry = Registry(settings.registry_conf())
    form = JsonForm(load_schema(SCHEMA))
    raw = json.loads(SCHEMA.read_text(encoding="utf-8"))
    codec = AvroCodec(raw)
    out = []
    for offset, (source, record) in enumerate(Generator(seed=3, mix=Mix(invalid=0.0)).records(count)):
        assert isinstance(record, dict)
        topic = topology.ingest(source)
        schema_id = registry.register(f"{topic}-value", raw)
        native = form.to_native(record)
        value = frame(schema_id, codec.encode(native))
        out.append(InMessage(topic, 0, offset, native["customer_id"].encode(), value, 0))
    out[1] = replace(out[1], topic="elsewhere")
    out[2] = replace(out[2], value=b"\x00\x01")
    out[3] = replace(out[3], key=None)
    return out


def _decided(deciders: DecidingProcesses, batch: Sequence[InMessage]) -> list[Outcome]:
    deciders.start()
    try:
        return asyncio.run(deciders(batch))
    finally:
        deciders.stop()


@pytest.mark.kafka
def test_children_decide_a_batch_as_the_worker_would(kafka: Settings, unique: str) -> None:
    """The registry is the only service used; the rights view's state is the worker's, asked when
    the batch is decided: a subject stopped then is withheld by the child too."""
    settings = kafka.model_copy(update={"topic_prefix": f"dp{unique}", "dq_sample_rate": 0.0})
    batch = _messages(settings, 400)
    stopped = {("jcom", m.key.decode()) for m in batch[10:400:7] if m.key is not None}
    asked = lambda source, key: (source, key) in stopped  # noqa: E731
    registry = Registry(settings.registry_conf())
    policies = load_policies(settings.policy_path)
    in_worker = pipeline_processor(settings, policies, registry, worker_id="w", is_stopped=asked)
    expected = [in_worker.process(message) for message in batch]
    got = _decided(DecidingProcesses(settings, worker_id="w", processes=2, is_stopped=asked), batch)
    assert [_comparable(o) for o in got] == [_comparable(o) for o in expected]
    statuses = {o.status for o in got}
    assert statuses == {Status.SHARED, Status.WITHHELD, Status.INVALID}, statuses  # the mix was covered
    assert any(o.reason == Reason.STOP_OF_USE for o in got), "no subject was stopped: nothing was tested"
    # Unsampled outcomes come back without what only a sample needs.
    assert all(o.record is None and o.decision is None for o in got)


@pytest.mark.kafka
def test_children_send_back_what_the_data_quality_sample_draws(kafka: Settings, unique: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"dq{unique}", "dq_sample_rate": 1.0})
    batch = _messages(settings, 100)
    got = _decided(DecidingProcesses(settings, worker_id="w", processes=2, is_stopped=lambda s, k: False), batch)
    decoded = [o for o in got if o.status is not Status.INVALID]
    assert decoded and all(o.record is not None and o.decision is not None for o in decoded)


def test_a_child_that_cannot_start_stops_the_worker_in_one_line(tmp_path: Path) -> None:
    """A policy a child cannot load (changed under the worker, say): the worker stops, fatal,
    naming the cause in one line, and no child is left behind."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: [", encoding="utf-8")
    script = (
        "import sys\n"
        "from streams.errors import FatalError\n"
        "from streams.settings import load_settings\n"
        "from streams.worker.deciders import DecidingProcesses\n"
        "settings = load_settings().model_copy(update={'policy_path': sys.argv[1]})\n"
        "deciders = DecidingProcesses(settings, worker_id='w', processes=2, is_stopped=lambda s, k: False)\n"
        "try:\n"
        "    deciders.start()\n"
        "except FatalError as exc:\n"
        "    print('FATAL', exc)\n"
    )
    ended = subprocess.run(
        [sys.executable, "-c", script, str(policy)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.DEVNULL,
    )
    assert "FATAL a deciding process could not start" in ended.stdout, ended.stdout + ended.stderr
    assert "a deciding process cannot start:" in ended.stderr and str(policy) in ended.stderr
    assert "Traceback" not in ended.stderr, ended.stderr


@pytest.mark.kafka
def test_a_registry_a_child_cannot_reach_is_waited_out_by_the_worker_not_made_a_dead_letter(
    kafka: Settings, unique: str
) -> None:
    """The child's dependency error reaches the worker as itself, so the loop waits the outage out
    (the same error policy as deciding in the worker)."""
    batch = _messages(kafka.model_copy(update={"topic_prefix": f"ro{unique}"}), 5)
    away = kafka.model_copy(update={"topic_prefix": f"ro{unique}", "schema_registry_url": "http://127.0.0.1:1"})
    deciders = DecidingProcesses(away, worker_id="w", processes=1, is_stopped=lambda s, k: False)
    with pytest.raises(RegistryError):
        _decided(deciders, batch)
