"""Broker helpers for pipeline tests: topics per test, a worker in a thread, reading topics back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, Message

from streams.kafka_admin import create_topics
from streams.policy.loader import load_policies
from streams.settings import Settings
from streams.streaming.runner import Guarantee, Runner
from streams.streaming.worker import build_runner
from streams.synthetic import Generator, Mix
from streams.topology import Topology


def setup_topics(settings: Settings, partitions: int = 4) -> Topology:
    topology = Topology(settings.topic_prefix)
    create_topics(
        settings.kafka_common(),
        topology.specs(load_policies(settings.policy_path).latest),
        partitions=partitions,
        replication=1,
    )
    return topology


def read_topic(
    settings: Settings, topic: str, *, expected: int | None = None, timeout: float = 60, quiet: float = 3.0
) -> list[Message]:
    """Committed messages of ``topic``: until ``expected`` arrived, or ``quiet`` seconds of silence."""
    consumer = Consumer(
        {
            **settings.kafka_common(),
            "group.id": f"reader-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.3)
            if message is None or message.error():
                if expected is None and time.monotonic() - last > quiet:
                    break
                continue
            last = time.monotonic()
            out.append(message)
            if expected is not None and len(out) >= expected:
                # A little longer, so that duplicates beyond the expected count would be seen.
                extra_deadline = time.monotonic() + 1.0
                while time.monotonic() < extra_deadline:
                    more = consumer.poll(0.2)
                    if more is not None and not more.error():
                        out.append(more)
                break
    finally:
        consumer.close()
    return out


def audit_events(settings: Settings, topology: Topology, expected: int, timeout: float = 120) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_topic(settings, topology.audit, expected=expected, timeout=timeout)]


@contextmanager
def running_worker(
    settings: Settings, *, worker_id: str = "t0", guarantee: Guarantee = "exactly_once", batch_size: int = 500
) -> Iterator[Runner]:
    runner = build_runner(settings, worker_id=worker_id, guarantee=guarantee, batch_size=batch_size)
    thread = threading.Thread(target=runner.run, name=f"worker-{worker_id}", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(30)


def generated_lines(count: int, seed: int, mix: Mix | None = None) -> dict[str, list[bytes]]:
    lines: dict[str, list[bytes]] = {"jcom": [], "jcom-insurance": []}
    for source, record in Generator(seed=seed, mix=mix).records(count):
        text = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)
        lines[source].append(text.encode())
    return lines
