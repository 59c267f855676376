"""The subject index in ``make bench``: how fast it is built, how fast a report reads it whatever the
history's size, and how many erasures per second go through it.

Audit events are written straight to a fresh audit topic (as the pipeline writes them: JSON, keyed
by the subject's pseudonym, Java-compatible partitions), five per subject, so a bigger history also
has more subjects. The index worker is the real one (``jointuse index``, RocksDB store).
"""

from __future__ import annotations

import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline import _fresh
from bench.progress import stage
from streams.devtools.processes import start_index, start_worker, stop_worker
from streams.kafka import clients
from streams.rights.core.rules import RightsAction
from streams.rights.index_client import SubjectIndex
from streams.rights.requests import file_requests
from streams.settings import Settings, load_settings
from streams.topology import Topology

EVENTS_PER_SUBJECT = 5
RECIPIENTS = ("jcom-insurance",)  # what a record of jcom reaches under the policy


def _customer(number: int) -> str:
    return f"C{number:08d}"


def write_history(settings: Settings, topology: Topology, events: int) -> list[str]:
    """``events`` audit events of ``events / 5`` subjects (customers of jcom); returns the customer ids."""
    keys = settings.subject_keys()
    customers = [_customer(n) for n in range(events // EVENTS_PER_SUBJECT)]
    subjects = [keys.subject("jcom", c) for c in customers]
    producer = clients.producer(settings.kafka_common(), linger_ms=50)
    now_ms = int(time.time() * 1000)
    for n in range(events):
        subject = subjects[n % len(subjects)]
        recipient = RECIPIENTS[n % len(RECIPIENTS)]
        event = {
            "subject": subject,
            "subject_key_id": keys.key_id,
            "source": "jcom",
            "status": "shared",
            "reason": "shared",
            "recipients": {recipient: {"purposes": ["jointuse.billing", "jointuse.support"], "items": ["name"]}},
            "policy_version": "2026-01",
            "input": {"topic": topology.ingest("jcom"), "partition": 0, "offset": n, "timestamp_ms": now_ms},
            "processed_at_ms": now_ms + n,
        }
        while True:
            try:
                producer.produce(topology.audit, key=subject.encode(), value=orjson.dumps(event))
                break
            except BufferError:
                producer.poll(0.1)
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the audit history was not written")
    return customers


def build(settings: Settings, events: int, timeout: float) -> tuple[subprocess.Popen[bytes], float]:
    """Starts an index worker and waits until it has applied ``events``; returns it and its rate
    (events/s from the first event applied to the last)."""
    index = start_index(settings, quiet=True)
    first: float | None = None
    deadline = time.monotonic() + timeout
    while True:
        applied = int(SubjectIndex(settings.index_url).status().get("applied") or 0)
        if applied and first is None:
            first, first_count = time.monotonic(), applied
        if applied >= events:
            assert first is not None
            return index, (applied - first_count) / max(time.monotonic() - first, 1e-9)
        if index.poll() is not None or time.monotonic() > deadline:
            stop_worker(index)
            raise RuntimeError(f"the index applied {applied} of {events} events")
        time.sleep(0.2)


def restore(settings: Settings, rows: int, state: str, timeout: float) -> float:
    """Starts an index worker with an empty state directory and returns the rows per second it
    restores from the changelog (from the start of the process until it answers lookups)."""
    fresh = settings.model_copy(update={"data_dir": Path(state) / "restored"})
    started = time.monotonic()
    index = start_index(fresh, quiet=True)
    try:
        deadline = started + timeout
        while True:
            status = SubjectIndex(settings.index_url).status()
            if status and not status.get("rebuilding") and status.get("partitions"):
                return rows / (time.monotonic() - started)
            if index.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the index did not restore its rows in time")
            time.sleep(0.2)
    finally:
        stop_worker(index)


def report_latency(settings: Settings, customers: list[str], lookups: int) -> dict[str, float]:
    keys = settings.subject_keys()
    index = SubjectIndex(settings.index_url)
    sample = random.Random(7).sample(customers, min(lookups, len(customers)))
    for customer in sample[:50]:  # warm the connection path
        index.lookup(keys.subject("jcom", customer))
    seconds = []
    for customer in sample:
        started = time.perf_counter()
        answer = index.lookup(keys.subject("jcom", customer))
        seconds.append(time.perf_counter() - started)
        assert answer.row is not None and answer.lag == 0
    seconds.sort()
    return {
        "lookups": len(seconds),
        "p50_ms": round(statistics.median(seconds) * 1000, 2),
        "p99_ms": round(seconds[int(len(seconds) * 0.99) - 1] * 1000, 2),
    }


def erasure_throughput(settings: Settings, topology: Topology, customers: list[str], requests: int) -> float:
    """Erasure requests per second through a faust worker (no grace): from filing to the last notice."""
    from streams.kafka.company_client import read_committed

    eraser = settings.model_copy(update={"erasure_grace_seconds": 0.0})
    worker = start_worker(eraser, "bench-eraser", quiet=True)
    try:
        time.sleep(8)  # the worker joins its group
        chosen = customers[:requests]
        started = time.monotonic()
        file_requests(eraser, RightsAction.ERASE, [(c, "jcom") for c in chosen])
        expected = requests * len(RECIPIENTS)  # every subject reached each recipient
        deadline = started + 600
        notices = 0
        while notices < expected and time.monotonic() < deadline:
            time.sleep(1)
            notices = sum(
                len(read_committed(eraser, topology.notices(r), expected=None, quiet=0.5)) for r in RECIPIENTS
            )
        if notices < expected:
            raise RuntimeError(f"{notices} of {expected} erasure notices")
        return requests / (time.monotonic() - started)
    finally:
        stop_worker(worker)


def run(sizes: tuple[int, ...] = (100_000, 1_000_000), lookups: int = 2_000, erasures: int = 500) -> dict[str, Any]:
    base = load_settings().model_copy(update={"metrics_port": 0})
    results: dict[str, Any] = {}
    for events in sizes:
        with stage(f"subject index over {events:,} audit events"), tempfile.TemporaryDirectory() as state:
            settings, topology = _fresh(base, "ix")
            settings = settings.model_copy(update={"index_port": 9490, "index_url": "http://127.0.0.1:9490"})
            settings = settings.model_copy(update={"data_dir": Path(state)})
            customers = write_history(settings, topology, events)
            index, rate = build(settings, events, timeout=max(120.0, events / 500))
            try:
                results[f"build_{events}_events_per_s"] = round(rate)
                latency = report_latency(settings, customers, lookups)
                results[f"report_{events}_p50_ms"] = latency["p50_ms"]
                results[f"report_{events}_p99_ms"] = latency["p99_ms"]
                if events == sizes[0]:
                    print(f"bench: {erasures} erasures through the index", flush=True)
                    results["erasures_per_s"] = round(erasure_throughput(settings, topology, customers, erasures), 1)
            finally:
                stop_worker(index)
            print(f"bench: restoring {len(customers):,} rows from the changelog", flush=True)
            results[f"restore_{len(customers)}_rows_per_s"] = round(
                restore(settings, len(customers), state, timeout=max(120.0, len(customers) / 200))
            )
    small, large = sizes[0], sizes[-1]
    if small != large:
        results["report_p99_large_over_small"] = round(
            results[f"report_{large}_p99_ms"] / results[f"report_{small}_p99_ms"], 2
        )
    return results
