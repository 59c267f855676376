"""The in-worker monitor: samples, validates in its child process, exports metrics (no broker)."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.messages import Outcome
from streams.policy.engine import Engine
from streams.quality import child as child_module
from streams.quality.child import NICENESS
from streams.quality.monitor import QualityMonitor
from streams.serde.governed import governed_version
from streams.settings import PROJECT_ROOT
from tests.records import make_native_records

LATEST_SCHEMA_PATH = governed_version(PROJECT_ROOT / "schemas").path


def _monitor(registry: CollectorRegistry, **options: Any) -> QualityMonitor:
    """The sampler as a worker builds it: the latest governed version, the repository's suites."""
    assert LATEST_SCHEMA_PATH is not None
    return QualityMonitor(
        registry, schema_path=LATEST_SCHEMA_PATH, suites_dir=PROJECT_ROOT / "dq" / "suites", **options
    )


def _outcomes(engine: Engine, count: int, *, bad_email: bool = False) -> list[Outcome]:
    out = []
    for record in make_native_records(count, seed=8):
        if bad_email:
            record["email"] = "no-at-sign"
        decision = engine.decide(record, record["source_company"], now=dt.datetime.now(dt.UTC), trusted=True)
        deliveries = {r: d.purposes for r, d in decision.deliveries.items()}
        out.append(
            Outcome(
                decision.status,
                decision.reason.value,
                record["source_company"],
                (),
                deliveries,
                (),
                decision=decision,
                record=record,
            )
        )
    return out


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_sampled_batches_are_validated_and_exported(engine: Engine) -> None:
    registry = CollectorRegistry()
    monitor = _monitor(registry, sample_rate=1.0, batch_size=50, seed=1)
    monitor.start()
    try:
        monitor.offer(_outcomes(engine, 50))
        monitor.offer(_outcomes(engine, 50, bad_email=True))
        deadline = time.monotonic() + 90
        while monitor.validated < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        monitor.stop()
    assert monitor.validated == 2
    assert _value(registry, "jointuse_dq_sampled_records_total") == 100
    assert _value(registry, "jointuse_dq_batches_total", suite="jointuse_ingest", result="passed") == 1
    assert _value(registry, "jointuse_dq_batches_total", suite="jointuse_ingest", result="failed") == 1
    labels = {"suite": "jointuse_ingest", "expectation": "expect_column_values_to_match_regex", "column": "email"}
    assert _value(registry, "jointuse_dq_expectation_failures_total", **labels) == 1
    assert _value(registry, "jointuse_dq_unexpected_percent", **labels) == 100.0
    assert _value(registry, "jointuse_dq_batches_total", suite="jointuse_delivery", result="passed") >= 1


def test_a_busy_monitor_drops_batches_instead_of_waiting(engine: Engine) -> None:
    registry = CollectorRegistry()
    monitor = _monitor(registry, sample_rate=1.0, batch_size=10)  # never started: nothing takes batches off the queue
    outcomes = _outcomes(engine, 10)
    started = time.perf_counter()
    for _ in range(5):
        monitor.offer(outcomes)
    assert time.perf_counter() - started < 1.0
    assert _value(registry, "jointuse_dq_dropped_batches_total") == 3  # the queue holds two
    off = _monitor(CollectorRegistry(), sample_rate=0, batch_size=10)
    off.offer(outcomes)
    assert not off.enabled and off._pending == []


def test_the_child_starts_with_the_monitor_at_a_lower_priority_before_any_batch() -> None:
    """Its imports and validators cost seconds of CPU: taken at start-up, not amid the traffic, and
    at nice 19 it waits for the worker's and the broker's idle time."""
    monitor = _monitor(CollectorRegistry(), sample_rate=1.0, batch_size=50)
    monitor.start()
    try:
        deadline = time.monotonic() + 30
        while monitor._child is None and time.monotonic() < deadline:
            time.sleep(0.05)
        child = monitor._child
        assert child is not None and child.poll() is None  # no batch was offered
        deadline = time.monotonic() + 30
        while os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0):
            assert time.monotonic() < deadline, "the child never lowered its priority"
            time.sleep(0.05)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
    finally:
        monitor.stop()


def test_a_suites_validator_is_made_anew_after_so_many_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Great Expectations context keeps a little of every run: the child's validators are renewed."""
    monkeypatch.setattr(child_module, "RUNS_PER_VALIDATOR", 2)
    monkeypatch.setattr(child_module, "SuiteValidator", lambda suite: object())
    validators = child_module._Validators({"ingest": {}, "delivery": {}})
    first = validators["ingest"]
    assert validators["ingest"] is first and validators["delivery"] is not first
    third = validators["ingest"]
    assert third is not first and validators["ingest"] is third
