"""The audit chain on the broker: a pipeline's audit topic verifies (both runtimes, several
writers), and a copy of it with one event altered, removed, moved or inserted fails at the offset
where the tampering shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.kafka.admin import create_topics
from streams.settings import Settings
from streams.topology import TopicSpec, Topology
from tests.conftest import new_suffix
from tests.runtime.helpers import produce_generated, read_topic, running_worker, setup_topics

pytestmark = pytest.mark.kafka


def verify(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "audit", "verify", "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **settings.worker_env()},
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def chained(kafka: Settings) -> tuple[Settings, Topology, list[list[bytes]]]:
    """A pipeline run: two workers of each runtime one after the other, the audit topic by partition."""
    settings = kafka.model_copy(update={"topic_prefix": f"ac{new_suffix()}", "audit_checkpoint_events": 50})
    topology = setup_topics(settings, partitions=3)
    total = 0
    for runtime, worker_id in (("faust", "a0"), ("confluent", "b0"), ("faust", "a0")):  # a0 twice: recovery
        with running_worker(settings, worker_id=worker_id, runtime=runtime):
            total += sum(produce_generated(settings, 150, seed=total).values())
            read_topic(settings, topology.audit, expected=total, timeout=180)
    by_partition: list[list[bytes]] = [[], [], []]
    for message in read_topic(settings, topology.audit, expected=total):
        by_partition[message.partition() or 0].append(message.value() or b"")
    return settings, topology, by_partition


def test_the_pipelines_audit_topic_verifies(chained: tuple[Settings, Topology, list[list[bytes]]]) -> None:
    settings, _, by_partition = chained
    code, report = verify(settings)
    assert (code, report["first"]) == (0, None)
    assert report["events"] == sum(len(values) for values in by_partition)
    assert report["checkpoints_matched"] >= 3
    writers = {json.loads(v)["chain"]["writer"] for values in by_partition for v in values}
    assert len(writers) == 2, writers  # a0 recovered its own chains instead of starting new ones


@pytest.mark.parametrize("tampering", ["alter", "remove", "move", "insert"])
def test_tampering_with_a_copy_is_found_at_its_offset(
    chained: tuple[Settings, Topology, list[list[bytes]]], tampering: str, unique: str
) -> None:
    settings, topology, by_partition = chained
    partition = max(range(3), key=lambda p: len(by_partition[p]))
    values = list(by_partition[partition])
    at = len(values) // 2
    writer = json.loads(values[at])["chain"]["writer"]
    later = next(i for i in range(at + 1, len(values)) if json.loads(values[i])["chain"]["writer"] == writer)
    expected = at
    if tampering == "alter":
        values[at] = values[at].replace(b'"status":"', b'"status":"x', 1)
    elif tampering == "remove":
        del values[at]
        expected = later - 1  # where the gap shows: the writer's next event, one place earlier now
    elif tampering == "move":
        values[at], values[later] = values[later], values[at]
    else:
        values.insert(at, b'{"subject":"forged","status":"shared"}')
    copy = f"{topology.audit}.copy{unique}"
    create_topics(settings.kafka_common(), [TopicSpec(copy)], partitions=3, replication=1)
    producer = Producer(settings.kafka_common())
    for p, original in enumerate(by_partition):
        for value in values if p == partition else original:
            producer.produce(copy, value=value, partition=p)
    assert producer.flush(60) == 0
    code, report = verify(settings, "--topic", copy)
    assert code == 1
    assert (report["first"]["partition"], report["first"]["offset"]) == (partition, expected), report
