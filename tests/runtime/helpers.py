"""Broker helpers for pipeline tests: topics per test, a worker in a thread, reading topics back."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streams.devtools.processes import start_index, start_worker, stop_worker
from streams.devtools.synthetic import Generator, Mix, to_line
from streams.kafka.admin import create_topics
from streams.kafka.company_client import produce_lines, read_committed
from streams.policy.loader import load_policies
from streams.settings import Guarantee, Settings
from streams.topology import Topology


def setup_topics(settings: Settings, partitions: int = 4) -> Topology:
    topology = Topology(settings.topic_prefix)
    create_topics(
        settings.kafka_common(),
        topology.specs(load_policies(settings.policy_path).latest),
        partitions=partitions,  # replicated as `jointuse topics create` does: 3 copies on three nodes
    )
    return topology


read_topic = read_committed


def audit_events(settings: Settings, topology: Topology, expected: int, timeout: float = 120) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_topic(settings, topology.audit, expected=expected, timeout=timeout)]


@contextmanager
def running_worker(
    settings: Settings, *, worker_id: str = "t0", runtime: str = "faust", guarantee: Guarantee = Guarantee.EXACTLY_ONCE
) -> Iterator[subprocess.Popen[bytes]]:
    worker = start_worker(settings, worker_id, runtime=runtime, guarantee=guarantee)
    try:
        yield worker
    finally:
        stop_worker(worker)


def with_index(settings: Settings, tmp_dir: str) -> Settings:
    """Settings for a subject-index worker of its own: a free port, its own state directory."""
    import socket
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return settings.model_copy(
        update={
            "index_port": port,
            "index_url": f"{settings.index_scheme()}://127.0.0.1:{port}",
            "data_dir": Path(tmp_dir),
        }
    )


@contextmanager
def running_index(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    index = start_index(settings)
    try:
        yield index
    finally:
        stop_worker(index)


def generated_lines(count: int, seed: int, mix: Mix | None = None) -> dict[str, list[bytes]]:
    return Generator(seed=seed, mix=mix).lines_by_source(count)


def produce_generated(settings: Settings, count: int, *, seed: int, mix: Mix | None = None) -> dict[str, int]:
    """Generated records produced by each source company; returns how many each produced."""
    lines = generated_lines(count, seed=seed, mix=mix)
    return {company: produce_lines(settings, company, lines[company]).produced for company in lines}


def customers_of(lines: list[bytes]) -> list[str]:
    """The customer ids in generated lines (the generator makes some lines bad on purpose)."""
    found = []
    for line in lines:
        try:
            found.append(str(json.loads(line)["customer_id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def produce_records(settings: Settings, count: int, *, seed: int, mix: Mix) -> list[dict[str, Any]]:
    """``count`` generated records (the valid ones), each produced by its source company; returns them."""
    records = [r for _, r in Generator(seed=seed, mix=mix).records(count) if isinstance(r, dict)]
    by_source: dict[str, list[bytes]] = {}
    for record in records:
        by_source.setdefault(record["source_company"], []).append(to_line(record).encode())
    for company, lines in by_source.items():
        produce_lines(settings, company, lines)
    return records


def deciding_children(pid: int) -> list[int]:
    """The deciding processes of the worker ``pid`` (``JOINTUSE_DECIDE_PROCESSES``): its children
    that run multiprocessing's spawn entry point (not its resource tracker)."""
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ready(port: int) -> int:
    """A worker's /readyz status code (0 when it does not answer within 15 s)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def statuses_for(seconds: float, port: int, worker: subprocess.Popen[bytes]) -> set[int]:
    """Every /readyz status a worker answered over ``seconds``; it must not exit meanwhile."""
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(ready(port))
        assert worker.poll() is None, f"the worker stopped (exit {worker.returncode})"
        time.sleep(2)
    return seen
