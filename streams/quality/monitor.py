"""In-worker data quality: samples committed records, validates micro-batches in a child process,
exports the results as metrics. The worker only pays for a random draw per record and, for a
sampled one, a reference kept in a list; a full queue drops the batch (counted), never waits.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.messages import Outcome
from streams.policy.classification import load_schema
from streams.policy.decision import Status
from streams.serde.json_form import JsonForm

log = logging.getLogger("jointuse.quality")


class QualityMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter(
            "jointuse_dq_batches",
            "Sampled batches validated, by suite and result.",
            ["suite", "result"],
            registry=registry,
        )
        self.failures = Counter(
            "jointuse_dq_expectation_failures",
            "Failed expectations in sampled batches.",
            ["suite", "expectation", "column"],
            registry=registry,
        )
        self.unexpected = Gauge(
            "jointuse_dq_unexpected_percent",
            "Share of unexpected values in the last failing batch, per expectation.",
            ["suite", "expectation", "column"],
            registry=registry,
        )
        self.sampled = Counter("jointuse_dq_sampled_records", "Records sampled for data quality.", registry=registry)
        self.dropped = Counter(
            "jointuse_dq_dropped_batches", "Sampled batches dropped because validation was busy.", registry=registry
        )
        self.errors = Counter(
            "jointuse_dq_errors", "Batches the data-quality process could not check.", registry=registry
        )
        self.last_run = Gauge(
            "jointuse_dq_last_run_timestamp_seconds", "When a sampled batch was last validated.", registry=registry
        )


class QualityMonitor:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        schema_path: Path,
        suites_dir: Path,
        sample_rate: float,
        batch_size: int,
        seed: int | None = None,
    ) -> None:
        self.metrics = QualityMetrics(registry)
        self.enabled = sample_rate > 0 and batch_size > 0
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.schema_path = schema_path
        self.suites_dir = suites_dir
        self._random = random.Random(seed)
        self._pending: list[Outcome] = []
        self._queue: queue.Queue[list[Outcome] | None] = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[str] | None = None
        self._form: JsonForm | None = None
        self.validated = 0

    # -- the worker's side: cheap ------------------------------------------------------------
    def offer(self, outcomes: Iterable[Outcome], *, drawn: bool = False) -> None:
        """Samples committed ``outcomes`` at the rate; ``drawn``: they were sampled where they were
        decided (``streams.worker.deciders``), and only those kept their record."""
        if not self.enabled:
            return
        if drawn:
            self._pending.extend(outcome for outcome in outcomes if outcome.record is not None)
        else:
            for outcome in outcomes:
                if outcome.record is not None and self._random.random() < self.sample_rate:
                    self._pending.append(outcome)
        if len(self._pending) >= self.batch_size:
            batch, self._pending = self._pending, []
            self.metrics.sampled.inc(len(batch))
            try:
                self._queue.put_nowait(batch)
            except queue.Full:
                self.metrics.dropped.inc()

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="data-quality", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                pass
            self._thread.join(10)
        if self._child is not None and self._child.poll() is None:
            self._child.kill()

    # -- the data-quality thread: conversion, the child process, metrics ------------------------
    def _run(self) -> None:
        self._form = JsonForm(load_schema(self.schema_path))
        try:
            # Started with the worker, before its traffic: the child's imports and validators cost
            # seconds of CPU, which at the first sampled batch came in the middle of the traffic.
            self._child_process()
        except OSError:
            self.metrics.errors.inc()
            log.exception("the data-quality process could not start; it is tried again at the first batch")
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                self._check(batch)
            except Exception:  # the monitor must outlive any one batch
                self.metrics.errors.inc()
                log.exception("a sampled batch could not be checked")

    def _payload(self, batch: list[Outcome]) -> dict[str, Any]:
        assert self._form is not None
        ingest, delivery = [], []
        for outcome in batch:
            ingest.append(self._form.to_json(dict(outcome.record or {})))
            decision = outcome.decision
            if decision is None or outcome.status is not Status.SHARED:
                continue
            for recipient, d in decision.deliveries.items():
                delivery.append(
                    {
                        "recipient": recipient,
                        "purposes": ",".join(d.purposes),
                        "policy_version": decision.policy_version,
                        "record": self._form.to_json(dict(d.record)),
                    }
                )
        return {"ingest": ingest, "delivery": delivery}

    def _child_process(self) -> subprocess.Popen[str]:
        if self._child is None or self._child.poll() is not None:
            self._child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streams.quality.child",
                    "--schema",
                    str(self.schema_path),
                    "--suites",
                    str(self.suites_dir),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        return self._child

    def _check(self, batch: list[Outcome]) -> None:
        child = self._child_process()
        stdin: IO[str] | None = child.stdin
        stdout: IO[str] | None = child.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(self._payload(batch), ensure_ascii=False, default=str) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError("the data-quality process ended")
        answer = json.loads(line)
        if "error" in answer:
            self.metrics.errors.inc()
            return
        for result in answer["results"]:
            suite = result["suite"]
            self.metrics.batches.labels(suite, "passed" if result["success"] else "failed").inc()
            for failure in result["failures"]:
                labels = (suite, failure["expectation"], failure["column"])
                self.metrics.failures.labels(*labels).inc()
                self.metrics.unexpected.labels(*labels).set(failure["unexpected_percent"])
        self.validated += 1
        self.metrics.last_run.set(time.time())
