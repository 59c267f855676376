"""Dependency outages pause a worker, never stop it: the registry frozen for 45 s while records of a
schema version the worker has not looked up yet arrive, then the broker frozen for 40 s, past the
transaction timeout (SIGSTOP, then SIGCONT: a hung process, not a refused connection) while it is
busy. The worker keeps running, says 503 on /readyz during each outage, and nothing is lost or
duplicated under exactly-once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import Producer

from streams.devtools.processes import start_worker, stop_worker
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedSchemas
from streams.serde.registry import Registry
from streams.serde.wire import frame
from streams.settings import PROJECT_ROOT, Settings
from tests.records import make_native_records
from tests.runtime.helpers import audit_events, free_port, ready, setup_topics, statuses_for
from tests.runtime.test_crash import _check_exactly_once, _produce

pytestmark = pytest.mark.kafka


def _server_pid(name: str) -> int:
    """The pid of a local broker node or the registry, as ``infra/local.sh status`` names it."""
    status = subprocess.run(
        [str(PROJECT_ROOT / "infra" / "local.sh"), "status"], capture_output=True, text=True, check=True
    )
    match = re.search(rf"{name}: up \(pid (\d+)", status.stdout + status.stderr)
    assert match, f"the local {name} is not running"
    return int(match.group(1))


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _produce_v2(settings: Settings, topic: str, schema_id: int, count: int) -> int:
    """Records of schema v2, framed with an id the worker has not looked up (no registry needed)."""
    v2 = dict(GovernedSchemas.load(settings.schema_dir).versions[1].classified.raw)
    codec = AvroCodec(v2)
    producer = Producer(settings.kafka_common())
    records = [r for r in make_native_records(count * 3, seed=77) if r["source_company"] == "jcom"][:count]
    for record in records:
        record.update(preferred_language="ja", voicemail_transcripts=[])
        producer.produce(topic, key=record["customer_id"].encode(), value=frame(schema_id, codec.encode(record)))
    assert producer.flush(30) == 0
    return len(records)


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_registry_and_broker_outages_pause_the_worker_and_lose_nothing(
    kafka: Settings, unique: str, runtime: str
) -> None:
    port = free_port()
    settings = kafka.model_copy(update={"topic_prefix": f"o{unique}", "metrics_port": port})
    topology = setup_topics(settings, partitions=2)
    total = _produce(settings, 1_000, seed=1)
    topic = topology.ingest("jcom")
    v2 = dict(GovernedSchemas.load(settings.schema_dir).versions[1].classified.raw)
    v2_id = Registry(settings.registry_conf()).register(f"{topic}-value", v2)
    worker = start_worker(settings, "outage-0", runtime=runtime, batch_size=100)
    try:
        audit_events(settings, topology, total, timeout=120)  # every record decided: the worker is up
        deadline = time.monotonic() + 30
        while ready(port) != 200 and time.monotonic() < deadline:
            time.sleep(1)
        assert ready(port) == 200, "the worker never became ready"

        with frozen(_server_pid("registry")):
            total += _produce_v2(settings, topic, v2_id, 200)  # their schema must be looked up
            during_registry = statuses_for(45, port, worker)
        assert 503 in during_registry, during_registry

        total += _produce(settings, 4_000, seed=2)
        time.sleep(1.5)  # the worker is busy, a transaction open
        with frozen(_server_pid("kafka node 1")):
            during_broker = statuses_for(40, port, worker)
        assert 503 in during_broker or 0 in during_broker, during_broker

        # Ready again by itself (a client that connects while the broker is still catching up can
        # stay stuck for minutes: the check's readers start once the broker answers again).
        deadline = time.monotonic() + 120
        while ready(port) != 200 and time.monotonic() < deadline:
            time.sleep(1)
        assert ready(port) == 200, "the worker did not become ready again"
        _check_exactly_once(settings, total)
        assert worker.poll() is None, "the worker stopped after the outages"
    finally:
        stop_worker(worker)
