"""One worker end to end through the local broker: sustained throughput, then latency at half of it.

Throughput: a backlog of records is produced first; the worker's rate is the backlog divided by the
time between its first and last committed audit event. Latency: records are produced at half that
rate, and each one's latency is the moment its audit event becomes visible to a read_committed
consumer minus the record's produce timestamp (so it includes the transaction commit).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer

from streams.kafka_admin import create_topics
from streams.policy.loader import load_policies
from streams.settings import Settings, load_settings
from streams.streaming.client import produce_lines, producer
from streams.streaming.processes import start_worker, stop_worker
from streams.synthetic import Generator, Mix
from streams.topology import Topology

SCHEMA = "customer_record.v1.avsc"


class AuditWatcher(threading.Thread):
    """Counts committed audit events and records when each became visible."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                **settings.kafka_common(),
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        self.consumer.subscribe([topic])
        self.seen: list[tuple[float, int]] = []  # (visible at, input timestamp ms)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for message in self.consumer.consume(500, 0.1):
                if message.error() is None:
                    event = json.loads(message.value() or b"{}")
                    self.seen.append((time.time(), int(event["input"]["timestamp_ms"])))
        self.consumer.close()

    def wait_for(self, count: int, timeout: float, worker: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if worker is not None and worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.seen)} of {count} audit events after {timeout}s")
            time.sleep(0.05)


def _fresh(base: Settings, tag: str) -> tuple[Settings, Topology]:
    settings = base.model_copy(update={"topic_prefix": f"bench{tag}{uuid.uuid4().hex[:8]}"})
    topology = Topology(settings.topic_prefix)
    create_topics(
        settings.kafka_common(), topology.specs(load_policies(settings.policy_path).latest), partitions=4, replication=1
    )
    return settings, topology


def _clean_lines(count: int, seed: int) -> list[bytes]:
    mix = Mix(invalid=0.0)
    return Generator(seed=seed, mix=mix, sources=("jcom",)).lines_by_source(count)["jcom"]


def throughput(base: Settings, *, runtime: str, guarantee: str, count: int) -> dict[str, Any]:
    settings, topology = _fresh(base, "t")
    produce_lines(settings, "jcom", _clean_lines(count, 1), schema_path=settings.schema_dir / SCHEMA, progress=False)
    watcher = AuditWatcher(settings, topology.audit)
    watcher.start()
    worker = start_worker(settings, "bench-0", runtime=runtime, guarantee=guarantee, quiet=True)
    try:
        watcher.wait_for(count, timeout=600, worker=worker)
    finally:
        stop_worker(worker)
        watcher.stopping.set()
    visible = sorted(t for t, _ in watcher.seen)
    seconds = visible[-1] - visible[0]
    return {"records": count, "seconds": round(seconds, 2), "records_per_s": round(count / seconds)}


def latency(base: Settings, *, runtime: str, rate: float, seconds: float = 10.0) -> dict[str, Any]:
    settings, topology = _fresh(base, "l")
    count = int(rate * seconds)
    lines = _clean_lines(count, 2)
    # Encode everything first, so that producing at the target rate costs only the send.
    from streams.policy.classification import load_schema
    from streams.policy.engine import Engine
    from streams.producing import Encoded, encode_lines
    from streams.serde.json_form import JsonForm
    from streams.serde.registry import Registry

    classified = load_schema(settings.schema_dir / SCHEMA)
    registry = Registry(settings.registry_conf())
    topic = topology.ingest("jcom")
    schema_id = registry.register(f"{topic}-value", dict(classified.raw))
    encoded = [
        e
        for e in encode_lines(
            lines,
            engine=Engine(classified, load_policies(settings.policy_path)),
            form=JsonForm(classified),
            codec=registry.codec(schema_id),
            schema_id=schema_id,
        )
        if isinstance(e, Encoded)
    ]
    watcher = AuditWatcher(settings, topology.audit)
    watcher.start()
    worker = start_worker(settings, "bench-lat", runtime=runtime, quiet=True)
    client = producer(settings, **{"linger.ms": 0})
    try:
        # Warm-up record: wait until the worker is assigned and has looked up the schema.
        client.produce(topic, key=encoded[0].key, value=encoded[0].value)
        client.flush(10)
        watcher.wait_for(1, timeout=120, worker=worker)
        started = time.perf_counter()
        for index, item in enumerate(encoded[1:], start=1):
            due = started + index / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            client.produce(topic, key=item.key, value=item.value)
            client.poll(0)
        client.flush(30)
        watcher.wait_for(len(encoded), timeout=300, worker=worker)
    finally:
        stop_worker(worker)
        watcher.stopping.set()
    latencies = sorted((visible * 1000 - produced_ms) for visible, produced_ms in watcher.seen[1:])
    return {
        "rate_records_per_s": round(rate),
        "records": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
    }


def run(count: int = 20_000) -> dict[str, Any]:
    base = load_settings()
    results: dict[str, Any] = {}
    for runtime in ("faust", "confluent"):
        for guarantee in ("exactly_once", "at_least_once"):
            results[f"{runtime}_{guarantee}"] = throughput(base, runtime=runtime, guarantee=guarantee, count=count)
        results[f"{runtime}_latency_at_half_rate"] = latency(
            base, runtime=runtime, rate=results[f"{runtime}_exactly_once"]["records_per_s"] / 2
        )
    return results
