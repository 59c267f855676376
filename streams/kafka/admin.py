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


MIN_IN_SYNC = 2  # with three replicas or more: a write waits for two copies, one node may be down


def intended_replication(brokers: int) -> int:
    """Three copies of every partition, or one per broker on a smaller cluster."""
    return max(1, min(3, brokers))


def replicated_config(config: Mapping[str, str], replication: int) -> dict[str, str]:
    """A topic's configuration with ``min.insync.replicas`` 2 where it has three replicas or more
    (a topic's own setting stays)."""
    if replication >= 3:
        return {"min.insync.replicas": str(MIN_IN_SYNC), **config}
    return dict(config)


def create_topics(
    conf: Mapping[str, Any],
    specs: Iterable[TopicSpec],
    *,
    partitions: int,
    replication: int | None = None,
    timeout: float = 30,
) -> list[TopicResult]:
    """Creates the topics that do not exist yet (idempotent), with ``replication`` copies of each
    partition (None: ``intended_replication`` of the cluster's brokers)."""
    admin = AdminClient(dict(conf))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ClusterError(f"cannot list topics: {clients.failure(exc)}") from exc
    existing = set(metadata.topics)
    copies = replication or intended_replication(len(metadata.brokers))
    specs = list(specs)
    wanted = [
        NewTopic(
            s.name,
            num_partitions=s.partitions or partitions,
            replication_factor=copies,
            config=replicated_config(s.config, copies),
        )
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
    right after (the demo, a test) could otherwise find a topic missing and refuse to start, on a
    loaded machine most of all, where the gap outlasts the worker's own check."""
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


@dataclass(frozen=True)
class ReplicationProblem:
    topic: str
    problem: str


def replication_problems(conf: Mapping[str, Any], prefix: str, timeout: float = 30) -> list[ReplicationProblem]:
    """The topics under ``prefix`` below their intended replication: fewer copies than
    ``intended_replication`` of the brokers, ``min.insync.replicas`` below 2 with three copies, or
    partitions whose copies are not all in sync now (a node down or behind)."""
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

    admin = AdminClient(dict(conf))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ClusterError(f"cannot list topics: {clients.failure(exc)}") from exc
    intended = intended_replication(len(metadata.brokers))
    ours = sorted(name for name in metadata.topics if name.startswith(f"{prefix}."))
    problems: list[ReplicationProblem] = []
    resources = [ConfigResource("topic", name) for name in ours]
    configs: dict[str, Any] = {}
    if resources:
        try:
            for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
                configs[resource.name] = future.result(timeout=timeout)
        except KafkaException as exc:
            raise ClusterError(f"cannot read topic configurations: {clients.failure(exc)}") from exc
    for name in ours:
        partitions = metadata.topics[name].partitions.values()
        copies = min((len(p.replicas) for p in partitions), default=0)
        if copies < intended:
            problems.append(ReplicationProblem(name, f"{copies} copies of each partition, {intended} intended"))
        entry = configs.get(name, {}).get("min.insync.replicas")
        in_sync_needed = int(entry.value) if entry is not None and entry.value is not None else 1
        if copies >= 3 and in_sync_needed < MIN_IN_SYNC:
            problems.append(ReplicationProblem(name, f"min.insync.replicas {in_sync_needed}, {MIN_IN_SYNC} intended"))
        lagging = sorted(p.id for p in partitions if len(p.isrs) < len(p.replicas))
        if lagging:
            problems.append(ReplicationProblem(name, f"partitions {lagging} have copies out of sync"))
    return problems
