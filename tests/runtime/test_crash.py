"""SIGKILL the worker mid-stream, several times; restart it. Under exactly-once no input is lost or
audited twice, no recipient sees a delivery twice, and the audit's hash chains still verify. Two
workers share a 4-partition topic, and one of them dying loses nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer

from streams.devtools.processes import start_worker, stop_worker
from streams.devtools.synthetic import Mix
from streams.kafka.lag import PartitionLag, group_lag
from streams.settings import Settings
from streams.topology import Topology
from tests.runtime.helpers import alive, audit_events, deciding_children, produce_generated, read_topic, setup_topics

pytestmark = pytest.mark.kafka
RUNTIMES = ["faust", "confluent"]
# Each runtime deciding itself, and with two deciding processes (JOINTUSE_DECIDE_PROCESSES).
DECIDING = [
    pytest.param(runtime, processes, id=f"{runtime}-{'deciding2' if processes else 'itself'}")
    for processes in (0, 2)
    for runtime in RUNTIMES
]


def _produce(settings: Settings, count: int, seed: int) -> int:
    return sum(produce_generated(settings, count, seed=seed, mix=Mix(invalid=0.02)).values())


def _audit_watcher(settings: Settings, topology: Topology, unique: str, *, committed: bool) -> Consumer:
    """A consumer of the audit topic from its start; ``committed=False`` also sees events of open
    transactions (a worker is busy before it commits anything)."""
    audit = Consumer(
        {
            **settings.kafka_common(),
            "group.id": f"watch-{unique}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    audit.subscribe([topology.audit])
    return audit


def _check_exactly_once(settings: Settings, total: int) -> list[dict[str, Any]]:
    """Every input audited once and every delivery received once; returns the audit events."""
    topology = setup_topics(settings)
    events = audit_events(settings, topology, total, timeout=240)
    offsets = Counter((e["input"]["topic"], e["input"]["partition"], e["input"]["offset"]) for e in events)
    received: dict[str, Counter[tuple[bytes | None, bytes]]] = {}
    for company in ("jcom", "jcom-insurance"):
        # Read until every delivery the audit names is there (then a second more, for any beyond):
        # a killed worker's open transaction hides what follows it on a partition until the
        # coordinator aborts it, and reading until 3 s of quiet once stopped at 568 of 1,960
        # deliveries that were all there when read again.
        expected = sum(1 for e in events if company in e["recipients"])
        deliveries = read_topic(settings, topology.deliver(company), expected=expected, timeout=240)
        received[company] = Counter((m.key(), dict(m.headers())["jointuse-trace-id"]) for m in deliveries)
    twice = {company: sum(n > 1 for n in seen.values()) for company, seen in received.items()}
    # The counts, for the record of a run (pytest -rA shows them).
    print(
        f"inputs {total}, audited {len(offsets)}, audited twice {sum(n > 1 for n in offsets.values())}, "
        f"deliveries twice {twice}"
    )
    assert len(offsets) == total, "an input was lost"
    assert set(offsets.values()) == {1}, f"an input was audited twice: {_twice_described(events, offsets)}"
    for company, seen in received.items():
        assert twice[company] == 0, f"{company} received a delivery twice"
        assert sum(seen.values()) == sum(1 for e in events if company in e["recipients"])
    assert_chains_hold(settings)
    return events


def _twice_described(events: list[dict[str, Any]], offsets: Counter[tuple[str, int, int]]) -> str:
    """Where the inputs audited twice are, and which links of the audit chain hold their copies:
    the runs of offsets per partition, and each copy's writer and sequence range."""
    twice = {key for key, count in offsets.items() if count > 1}
    copies: dict[tuple[str, int], list[tuple[int, str, int]]] = {}
    for event in events:
        key = (event["input"]["topic"], event["input"]["partition"], event["input"]["offset"])
        if key in twice:
            chain = event.get("chain") or {}
            copies.setdefault(key[:2], []).append((key[2], str(chain.get("writer")), int(chain.get("seq", -1))))
    lines = []
    for (topic, partition), found in sorted(copies.items()):
        by_writer: dict[str, list[int]] = {}
        for _, writer, seq in found:
            by_writer.setdefault(writer, []).append(seq)
        spans = {writer: (min(seqs), max(seqs), len(seqs)) for writer, seqs in by_writer.items()}
        offsets_of = sorted({offset for offset, _, _ in found})
        lines.append(
            f"{topic}[{partition}] offsets {offsets_of[0]}-{offsets_of[-1]} ({len(offsets_of)}), copies {spans}"
        )
    return "; ".join(lines)


def _input_offsets(settings: Settings, topology: Topology) -> list[PartitionLag]:
    """The pipeline group's offsets on the input topics (``high``: the next offset to be written)."""
    topics = [topology.ingest(company) for company in ("jcom", "jcom-insurance")]
    return group_lag(settings, f"{settings.topic_prefix}.pipeline", topics)


def assert_chains_hold(settings: Settings) -> None:
    """The audit's hash chains survive SIGKILLs, restarts and rebalances (streams/audit)."""
    from streams.audit.verify import verify_deployment

    verifier = verify_deployment(settings)
    assert verifier.first is None, [str(v) for v in verifier.violations[:5]]


@pytest.mark.parametrize(("runtime", "deciding"), DECIDING)
def test_sigkill_and_restart_keeps_exactly_once(kafka: Settings, unique: str, runtime: str, deciding: int) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"c{unique}", "decide_processes": deciding})
    topology = setup_topics(settings)
    audit = _audit_watcher(settings, topology, unique, committed=False)
    seen = 0
    total = 0
    mid_chunk_kills = 0
    worker = None
    try:
        for round_no in range(3):
            total += _produce(settings, 3_000, seed=10 + round_no)
            worker = start_worker(settings, "crash-0", runtime=runtime, batch_size=100)
            deadline = time.monotonic() + 60
            while seen < total - 2_500 and time.monotonic() < deadline:  # wait until it is busy
                message = audit.poll(0.05)
                if message is not None and not message.error():
                    seen += 1
            children = deciding_children(worker.pid)
            assert len(children) == deciding, "the worker does not decide as it was told"
            worker.send_signal(signal.SIGKILL)  # mid-stream: part of this round's input is still unread
            worker.wait(10)
            _assert_gone(children)
            while (message := audit.poll(0.5)) is not None:
                seen += 0 if message.error() else 1
            mid_chunk_kills += seen < total
    finally:
        audit.close()
        if worker is not None:
            stop_worker(worker)  # a failure mid-round must not leave a worker running (no-op once killed)
    assert mid_chunk_kills >= 1, "no kill happened mid-stream"
    final = start_worker(settings, "crash-0", runtime=runtime, batch_size=100)
    try:
        _check_exactly_once(settings, total)
    finally:
        stop_worker(final)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_two_workers_share_partitions_and_one_dying_loses_nothing(kafka: Settings, unique: str, runtime: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"w{unique}"})
    topology = setup_topics(settings)
    first = start_worker(settings, "pair-0", runtime=runtime, batch_size=100)
    second = start_worker(settings, "pair-1", runtime=runtime, batch_size=100)
    audit = _audit_watcher(settings, topology, unique, committed=True)
    by_worker: Counter[str] = Counter()
    total = 0
    try:
        # Feed small chunks until both workers have processed something: both hold partitions.
        deadline = time.monotonic() + 90
        while len(by_worker) < 2 and time.monotonic() < deadline:
            total += _produce(settings, 100, seed=total)
            poll_until = time.monotonic() + 2
            while time.monotonic() < poll_until:
                message = audit.poll(0.1)
                if message is not None and not message.error():
                    by_worker[json.loads(message.value())["processed_by"]] += 1
        assert set(by_worker) == {"pair-0", "pair-1"}, by_worker
        total += _produce(settings, 4_000, seed=7)
        second.send_signal(signal.SIGKILL)  # while the second batch is in flight
        second.wait(10)
        _check_exactly_once(settings, total)
    finally:
        audit.close()
        for worker in (first, second):
            stop_worker(worker)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_worker_joining_and_leaving_a_busy_one_keeps_exactly_once(kafka: Settings, unique: str, runtime: str) -> None:
    """Two rebalances while the first worker has a transaction in flight and, on the faust runtime,
    a batch decided ahead: whatever it does not finish goes to the partitions' next owner once."""
    settings = kafka.model_copy(update={"topic_prefix": f"j{unique}"})
    topology = setup_topics(settings)
    audit = _audit_watcher(settings, topology, unique, committed=True)
    by_worker: Counter[str] = Counter()

    def watch(until: Callable[[], bool], seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not until() and time.monotonic() < deadline:
            message = audit.poll(0.05)
            if message is not None and not message.error():
                by_worker[json.loads(message.value())["processed_by"]] += 1

    # The backlog is there before the first worker starts: produced while it runs, it was sometimes
    # done (the producer is barely faster than a worker) before the second one had joined.
    total = _produce(settings, 40_000, seed=2)
    busy = start_worker(settings, "busy-0", runtime=runtime, batch_size=100)
    joining = None
    try:
        watch(lambda: by_worker["busy-0"] > 0)
        assert by_worker["busy-0"] > 0, "the first worker did not start"
        before_join = {(p.topic, p.partition): p.high for p in _input_offsets(settings, topology)}
        joining = start_worker(settings, "busy-1", runtime=runtime, batch_size=100)
        watch(lambda: by_worker["busy-1"] > 0)
        total += _produce(settings, 4_000, seed=3)
        watch(lambda: by_worker["busy-1"] >= 300)
        assert by_worker["busy-1"] >= 300, "the joining worker did not take its share of the work"
        total += _produce(settings, 8_000, seed=4)
        stop_worker(joining)  # a graceful leave, with a backlog: a second rebalance
        events = _check_exactly_once(settings, total)
        inherited = sum(
            1
            for e in events
            if e["processed_by"] == "busy-1"
            and e["input"]["offset"] < before_join[(e["input"]["topic"], e["input"]["partition"])]
        )
        print(f"records produced before the join and processed by the joiner: {inherited}")
        assert inherited > 0, "the first worker had done the backlog before the join: nothing was tested"
    finally:
        audit.close()
        # A worker left running after a failure spins on its deleted topics and starves later tests.
        for worker in (joining, busy):
            if worker is not None:
                stop_worker(worker)


# Deciding processes are the same code under either runtime: paused, the faust runtime's carry them.
PAUSED = [param for param in DECIDING if param.id != "confluent-deciding2"]


@pytest.mark.parametrize(("runtime", "deciding"), PAUSED)
def test_a_worker_paused_past_its_session_keeps_exactly_once(
    kafka: Settings, unique: str, runtime: str, deciding: int
) -> None:
    """A long GC pause, a frozen VM, a partition: the first worker is frozen (SIGSTOP) with a
    transaction open, past its session timeout (10 s), so the second takes its partitions; it is
    resumed (SIGCONT) before its transaction times out (30 s) and both run on. The frozen one runs
    no revocation callback before it writes again: only fencing can stop its commit."""
    settings = kafka.model_copy(update={"topic_prefix": f"z{unique}", "decide_processes": deciding})
    topology = setup_topics(settings, partitions=2)
    total = _produce(settings, 30_000, seed=5)
    committed = _audit_watcher(settings, topology, f"{unique}-c", committed=True)
    uncommitted = _audit_watcher(settings, topology, f"{unique}-u", committed=False)
    paused = start_worker(settings, "pause-0", runtime=runtime, batch_size=100)
    taking_over = None
    try:
        seen_committed = 0
        deadline = time.monotonic() + 90
        while seen_committed < 3_000 and time.monotonic() < deadline:
            message = committed.poll(0.05)
            if message is not None and not message.error():
                seen_committed += 1
        assert seen_committed >= 3_000, "the first worker did not start"
        # Frozen at a moment its transaction is open (what the uncommitted watcher sees beyond the
        # committed one); at another moment, let it run on a little and try again. aiokafka sends a
        # transaction's records just before its commit, so on the faust runtime that moment is short.
        committed_count = seen_committed
        written = 0
        # The moments are drawn at random: a fixed interval can fall into step with the worker's cycle.
        moments = random.Random(7)
        for _attempt in range(150):
            paused.send_signal(signal.SIGSTOP)
            written += _drain(uncommitted, quiet=0.5)
            committed_count += _drain(committed)
            if written > committed_count:
                break
            paused.send_signal(signal.SIGCONT)
            time.sleep(moments.uniform(0.01, 0.25))
        assert written > committed_count, "no transaction was open when the worker was frozen"
        taking_over = start_worker(settings, "pause-1", runtime=runtime, batch_size=100)
        time.sleep(20)  # past the session timeout, before the transaction timeout
        paused.send_signal(signal.SIGCONT)
        _check_exactly_once(settings, total)
        assert paused.poll() is None or paused.returncode == 70, "the resumed worker failed otherwise than fenced"
    finally:
        committed.close()
        uncommitted.close()
        paused.send_signal(signal.SIGCONT)  # a frozen worker cannot be terminated
        for worker in (paused, taking_over):
            if worker is not None:
                stop_worker(worker)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_deciding_process_killed_stops_its_worker_and_loses_nothing(
    kafka: Settings, unique: str, runtime: str
) -> None:
    """A deciding process dies mid-stream (the OOM killer, a crash in compiled code): its worker
    stops, fatal (exit 70), writing nothing of the batch it was deciding, and its other child goes
    with it; the restarted worker resumes from the last committed transaction."""
    settings = kafka.model_copy(update={"topic_prefix": f"d{unique}", "decide_processes": 2})
    topology = setup_topics(settings)
    total = _produce(settings, 20_000, seed=11)
    audit = _audit_watcher(settings, topology, unique, committed=True)
    worker = start_worker(settings, "child-0", runtime=runtime, batch_size=100)
    restarted = None
    try:
        seen = 0
        deadline = time.monotonic() + 90
        while seen < 2_000 and time.monotonic() < deadline:  # busy, and its children with it
            message = audit.poll(0.05)
            if message is not None and not message.error():
                seen += 1
        assert seen >= 2_000, "the worker did not start"
        children = deciding_children(worker.pid)
        assert len(children) == 2, children
        os.kill(children[0], signal.SIGKILL)
        assert worker.wait(60) == 70, "the worker did not stop fatally when a deciding process died"
        _assert_gone(children)
        seen += _drain(audit)
        assert seen < total, "the worker had done every input before its child died: nothing was tested"
        restarted = start_worker(settings, "child-0", runtime=runtime, batch_size=100)
        _check_exactly_once(settings, total)
    finally:
        audit.close()
        for running in (worker, restarted):
            if running is not None:
                stop_worker(running)


def _assert_gone(pids: list[int], seconds: float = 10) -> None:
    """A worker's deciding processes end with it: none is left running (or deciding) an orphan."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), "a deciding process outlived its worker"


def _drain(consumer: Consumer, quiet: float = 1.0) -> int:
    """How many messages the consumer reads until none comes for ``quiet`` s (the writer is frozen)."""
    count = 0
    while (message := consumer.poll(quiet)) is not None:
        count += 0 if message.error() else 1
    return count
