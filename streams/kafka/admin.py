"""Topic administration with confluent-kafka's AdminClient; errors wrapped once, here."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime, not in stubs

from streams.errors import ClusterError
from streams.kafka import clients
from streams.topology import TopicSpec


@dataclass(frozen=True)
class TopicResult:
    name: str
    created: bool


def create_topics(
    conf: Mapping[str, Any], specs: Iterable[TopicSpec], *, partitions: int, replication: int, timeout: float = 30
) -> list[TopicResult]:
    """Creates the topics that do not exist yet (idempotent)."""
    admin = AdminClient(dict(conf))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ClusterError(f"cannot list topics: {clients.failure(exc)}") from exc
    specs = list(specs)
    wanted = [
        NewTopic(s.name, num_partitions=s.partitions or partitions, replication_factor=replication, config=s.config)
        for s in specs
        if s.name not in existing
    ]
    results = [TopicResult(s.name, False) for s in specs if s.name in existing]
    if wanted:
        for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                results.append(TopicResult(name, True))
            except KafkaException as exc:
                error = exc.args[0]
                if getattr(error, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    results.append(TopicResult(name, False))
                    continue
                raise ClusterError(f"cannot create topic {name} ({error})") from exc
    _await_leaders(admin, [s.name for s in specs], timeout)
    return sorted(results, key=lambda r: r.name)


def _await_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Returns once every topic in ``names`` is in the metadata with a leader for each partition.

    The controller acknowledges a creation before every broker's metadata has it: a worker started
    right after (the demo, a test) could otherwise find a topic missing and refuse to start. Seen on
    a loaded machine, where the gap was long enough for the worker's own check."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while True:
        try:
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise ClusterError(f"cannot list topics: {clients.failure(exc)}") from exc
        pending = {
            name
            for name in pending
            if (topic := metadata.topics.get(name)) is None
            or topic.error is not None
            or not topic.partitions
            or any(p.leader < 0 for p in topic.partitions.values())
        }
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"topics without a leader {timeout:.0f} s after their creation: {sorted(pending)}")
        time.sleep(0.2)
