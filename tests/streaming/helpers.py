"""Broker helpers for pipeline tests: topics per test, a worker in a thread, reading topics back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streams.kafka_admin import create_topics
from streams.policy.loader import load_policies
from streams.settings import Settings
from streams.streaming.client import read_committed
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


read_topic = read_committed


def audit_events(settings: Settings, topology: Topology, expected: int, timeout: float = 120) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_topic(settings, topology.audit, expected=expected, timeout=timeout)]


def start_worker(
    settings: Settings,
    worker_id: str,
    *,
    runtime: str = "faust",
    guarantee: str = "exactly_once",
    batch_size: int = 100,
) -> subprocess.Popen[bytes]:
    """``jointuse worker`` as a child process (the faust runtime replaces it with ``faust worker``)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli.main",
            "worker",
            "--worker-id",
            worker_id,
            "--runtime",
            runtime,
            "--batch-size",
            str(batch_size),
            "--guarantee",
            guarantee,
        ],
        env={**os.environ, **settings.worker_env()},
        stdin=subprocess.DEVNULL,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


@contextmanager
def running_worker(
    settings: Settings, *, worker_id: str = "t0", runtime: str = "faust", guarantee: str = "exactly_once"
) -> Iterator[subprocess.Popen[bytes]]:
    worker = start_worker(settings, worker_id, runtime=runtime, guarantee=guarantee, batch_size=500)
    try:
        yield worker
    finally:
        stop_worker(worker)


def generated_lines(count: int, seed: int, mix: Mix | None = None) -> dict[str, list[bytes]]:
    return Generator(seed=seed, mix=mix).lines_by_source(count)
