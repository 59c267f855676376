"""The faults of a three-node cluster while a worker is busy, on both runtimes: each node in turn
killed (SIGKILL), left down 15 s and restarted (partition leaders and the transaction and group
coordinators move), or two of the three down together for 30 s (the controller quorum and
min.insync.replicas lost) and back. Companies keep producing throughout. Every input is audited
once, no recipient receives a delivery twice, the audit chains hold, and the worker never exits.

The cluster is started here, beside the registry `make test` runs (`infra/local.sh kafka-up` with
three nodes on ports of its own, the checkout's CA and admin password), every topic at replication
3 with 2 in sync, as `jointuse topics create` makes them on three nodes. `make test` runs each fault
on one runtime (the nodes killed under confluent-kafka, the quorum lost under faust); `make
test-cluster` runs both faults on both runtimes."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.devtools.processes import start_worker, stop_worker
from streams.kafka.admin import replication_problems
from streams.kafka.company_client import read_committed
from streams.settings import PROJECT_ROOT, Settings
from streams.topology import Topology
from tests.runtime.helpers import audit_events, free_port, produce_generated, ready, setup_topics, statuses_for
from tests.runtime.test_crash import _check_exactly_once

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]
LOCAL_SH = PROJECT_ROOT / "infra" / "local.sh"
PORTS = {
    "JOINTUSE_KAFKA_PORT": 19192,
    "JOINTUSE_KAFKA_MTLS_PORT": 19194,
    "JOINTUSE_KAFKA_PLAIN_PORT": 19195,
    "JOINTUSE_KAFKA_CONTROLLER_PORT": 19193,
}


@dataclass
class Cluster:
    env: dict[str, str]
    settings: Settings
    down: set[int]

    def run(self, *args: str) -> None:
        done = subprocess.run(
            [str(LOCAL_SH), *args], env=self.env, capture_output=True, text=True, timeout=240, check=False
        )
        assert done.returncode == 0, f"infra/local.sh {' '.join(args)}: {done.stderr[-2000:]}"

    def kill(self, node: int) -> None:
        self.run("node-stop", str(node), "kill")
        self.down.add(node)

    def start(self, node: int) -> None:
        self.run("node-start", str(node))
        self.down.discard(node)


@pytest.fixture(scope="module")
def three_nodes(kafka: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if kafka.ssl_ca_file is None or kafka.sasl_password_file is None:
        pytest.fail("the three-node cluster takes the local cluster's CA and admin password: run under make test")
    local = tmp_path_factory.mktemp("three-nodes")
    (local / "kafka").mkdir()
    (local / "kafka" / "libs").symlink_to(PROJECT_ROOT / ".local" / "kafka" / "libs")
    (local / "kafka" / "admin.password").symlink_to(kafka.sasl_password_file)
    (local / "tls").symlink_to(kafka.ssl_ca_file.parent)
    env = {
        **os.environ,
        "JOINTUSE_LOCAL_DIR": str(local),
        "JOINTUSE_KAFKA_NODES": "3",
        **{name: str(port) for name, port in PORTS.items()},
    }
    bootstrap = ",".join(f"127.0.0.1:{PORTS['JOINTUSE_KAFKA_PORT'] + 10 * n}" for n in range(3))
    cluster = Cluster(env, kafka.model_copy(update={"bootstrap_servers": bootstrap}), set())
    cluster.run("kafka-up")
    try:
        yield cluster
    finally:
        # A throwaway cluster: killed, not shut down (a controlled shutdown of the last nodes waits
        # for a quorum that is leaving with them).
        for node in (1, 2, 3):
            cluster.kill(node)


class Producing:
    """Companies producing batches of generated records, one a second, until stopped; a batch the
    cluster refuses (its quorum lost) is tried again later with other records."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.refused = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seed = 1_000
        while not self.stop.is_set():
            seed += 1
            try:
                produce_generated(self.settings, 100, seed=seed)
            except Exception:  # the cluster refused (quorum lost): what it acknowledged counts
                self.refused += 1
            self.stop.wait(1.0)

    def __enter__(self) -> Producing:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(120)


def _inputs(settings: Settings) -> int:
    """The records the companies' transactions committed to their ingest topics."""
    from streams.topology import Topology

    topology = Topology(settings.topic_prefix)
    return sum(
        len(read_committed(settings, topology.ingest(company), timeout=120, quiet=5))
        for company in ("jcom", "jcom-insurance")
    )


# Each fault on both runtimes; `make test` runs one per runtime, `make test-cluster` all four.
NODES_KILLED = [pytest.param("faust", marks=pytest.mark.cluster_full), "confluent"]
QUORUM_LOST = ["faust", pytest.param("confluent", marks=pytest.mark.cluster_full)]


@dataclass
class Busy:
    settings: Settings
    port: int
    worker: subprocess.Popen[bytes]


@pytest.fixture
def busy(three_nodes: Cluster, unique: str, runtime: str, tmp_path: Path) -> Iterator[Busy]:
    """A worker on the three nodes with a backlog of 2,000 records, 200 of them already audited."""
    port = free_port()
    settings = three_nodes.settings.model_copy(
        update={"topic_prefix": f"n{unique}", "data_dir": tmp_path, "metrics_port": port}
    )
    setup_topics(settings)
    assert replication_problems(settings.kafka_common(), settings.topic_prefix) == []
    produce_generated(settings, 2_000, seed=70)
    worker = start_worker(settings, "n0", runtime=runtime, batch_size=100)
    try:
        # Busy first: a worker that meets a broker error while it starts stops (exit 3) and is
        # restarted by its supervisor; the faults here are those of a running worker.
        audit_events(settings, Topology(settings.topic_prefix), 200, timeout=120)
        yield Busy(settings, port, worker)
    finally:
        for node in sorted(three_nodes.down):
            three_nodes.start(node)
        stop_worker(worker)


@pytest.mark.parametrize("runtime", NODES_KILLED)
def test_each_node_killed_in_turn_loses_nothing_and_writes_nothing_twice(three_nodes: Cluster, busy: Busy) -> None:
    with Producing(busy.settings) as producing:
        for node in (1, 2, 3):
            time.sleep(4)
            three_nodes.kill(node)
            time.sleep(15)
            three_nodes.start(node)
            assert busy.worker.poll() is None, f"the worker exited ({busy.worker.returncode}) around node {node}'s kill"
    _assert_exactly_once_and_ready(busy, producing)


@pytest.mark.parametrize("runtime", QUORUM_LOST)
def test_two_nodes_lost_together_lose_nothing_write_nothing_twice_and_unready(three_nodes: Cluster, busy: Busy) -> None:
    with Producing(busy.settings) as producing:
        # A backlog the worker is busy with when the quorum goes: without one, the companies'
        # writes are refused too, the worker has nothing to commit, and nothing to be unready for.
        produce_generated(busy.settings, 20_000, seed=71)
        time.sleep(2)
        three_nodes.kill(2)
        three_nodes.kill(3)
        without_quorum = statuses_for(30, busy.port, busy.worker)
        assert 503 in without_quorum, f"/readyz while writes were not acknowledged: {without_quorum}"
        three_nodes.start(2)
        three_nodes.start(3)
        time.sleep(5)
    _assert_exactly_once_and_ready(busy, producing)


def _assert_exactly_once_and_ready(busy: Busy, producing: Producing) -> None:
    deadline = time.monotonic() + 120
    while ready(busy.port) != 200 and time.monotonic() < deadline:
        time.sleep(2)
    assert ready(busy.port) == 200, "the worker was not ready again within 120 s of the cluster's return"
    total = _inputs(busy.settings)
    print(f"inputs {total}, batches the companies saw refused {producing.refused}")
    _check_exactly_once(busy.settings, total)
    assert busy.worker.poll() is None, f"the worker exited ({busy.worker.returncode})"
