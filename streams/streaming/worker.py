"""Builds a runner from settings and runs it until SIGTERM / SIGINT."""

from __future__ import annotations

import signal
import socket
from types import FrameType

from streams.logs import configure as configure_logging
from streams.policy.loader import PolicySet, load_policies
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.streaming.processor import Processor
from streams.streaming.runner import Guarantee, Runner, RunnerConfig, RunnerStats
from streams.telemetry import Telemetry
from streams.topology import Topology


def default_worker_id() -> str:
    return socket.gethostname().split(".")[0] + "-0"


def ingest_topics(settings: Settings, policies: PolicySet) -> list[str]:
    """The ingest topic of every joint user of every policy version."""
    topology = Topology(settings.topic_prefix)
    return sorted({topology.ingest(u.id) for p in policies.versions for u in p.joint_users})


def build_runner(
    settings: Settings, *, worker_id: str, guarantee: Guarantee, batch_size: int = 500
) -> tuple[Runner, Telemetry]:
    topology = Topology(settings.topic_prefix)
    policies = load_policies(settings.policy_path)
    registry = Registry(settings.registry_conf())
    processor = Processor(topology=topology, policies=policies, registry=registry, worker_id=worker_id)
    config = RunnerConfig(
        kafka=settings.kafka_common(),
        group_id=f"{settings.topic_prefix}.pipeline-confluent",
        # Stable per worker: a restarted worker fences its predecessor and aborts its open transaction.
        transactional_id=f"{settings.topic_prefix}.pipeline-confluent.{worker_id}",
        guarantee=guarantee,
        batch_size=batch_size,
    )
    runner = Runner(config, processor, topology)
    observed = Telemetry(
        settings,
        group_id=config.group_id,
        topics=ingest_topics(settings, policies),
        registry=registry,
        policy=policies.latest,
        assigned=lambda: bool(runner.assigned),
    )
    runner.metrics = observed.metrics
    return runner, observed


def run_worker(
    settings: Settings,
    *,
    worker_id: str,
    guarantee: Guarantee,
    max_idle_seconds: float | None = None,
    batch_size: int = 500,
) -> RunnerStats:
    runner, telemetry = build_runner(settings, worker_id=worker_id, guarantee=guarantee, batch_size=batch_size)

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    configure_logging()
    telemetry.start()
    try:
        return runner.run(max_idle_seconds=max_idle_seconds)
    finally:
        telemetry.stop()
