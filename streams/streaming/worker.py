"""Builds a runner from settings and runs it until SIGTERM / SIGINT."""

from __future__ import annotations

import signal
import socket
from types import FrameType

from streams.policy.loader import load_policies
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.streaming.processor import Processor
from streams.streaming.runner import Guarantee, Runner, RunnerConfig, RunnerStats
from streams.topology import Topology


def default_worker_id() -> str:
    return socket.gethostname().split(".")[0] + "-0"


def build_runner(settings: Settings, *, worker_id: str, guarantee: Guarantee, batch_size: int = 500) -> Runner:
    topology = Topology(settings.topic_prefix)
    processor = Processor(
        topology=topology,
        policies=load_policies(settings.policy_path),
        registry=Registry(settings.registry_conf()),
        worker_id=worker_id,
    )
    config = RunnerConfig(
        kafka=settings.kafka_common(),
        group_id=f"{settings.topic_prefix}.pipeline-confluent",
        # Stable per worker: a restarted worker fences its predecessor and aborts its open transaction.
        transactional_id=f"{settings.topic_prefix}.pipeline-confluent.{worker_id}",
        guarantee=guarantee,
        batch_size=batch_size,
    )
    return Runner(config, processor, topology)


def run_worker(
    settings: Settings,
    *,
    worker_id: str,
    guarantee: Guarantee,
    max_idle_seconds: float | None = None,
    batch_size: int = 500,
) -> RunnerStats:
    runner = build_runner(settings, worker_id=worker_id, guarantee=guarantee, batch_size=batch_size)

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return runner.run(max_idle_seconds=max_idle_seconds)
