"""One pipeline worker, composed once for both runtimes.

A worker is two BatchLoops (the ingest pipeline and erasure) and what they share: the rights view,
telemetry, the audit sealer, the quality sampler and the metrics they feed. ``Worker`` builds all
of it from the settings and makes each loop over a transport the runtime gives it; the faust entry
point (``streams.app``) and the confluent one (``streams.worker.confluent_main``) differ only in
their transports and in how they run the loops. So exit codes, pipelining, metrics and start-up
checks are the same on both by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.audit.sealer import AuditSealer
from streams.messages import InMessage, Outcome
from streams.observability.metrics import RightsMetrics
from streams.policy.loader import load_policies
from streams.rights.core.erasure import ErasureOutcome
from streams.runtime.loop import BatchLoop, Transport
from streams.serde.registry import Registry
from streams.settings import Guarantee, Settings
from streams.worker.deciders import DecidingProcesses
from streams.worker.parts import (
    audit_sealer,
    erasure_delay,
    ingest_topics,
    pipeline_processor,
    quality_monitor,
    rights_processor,
    rights_view,
    settle_heap,
)
from streams.worker.telemetry import Telemetry

log = logging.getLogger("jointuse.worker")


@dataclass(frozen=True)
class WorkerNames:
    """What a runtime names its group and transactions by. Each runtime has its own (a faust worker
    and a confluent one never share a group), stable per worker id: a restarted worker fences its
    predecessor. The pipeline's transactional id also names its audit chain (one writer at a time)."""

    group_id: str
    transactional_id: str
    rights_group_id: str  # the faust runtime's one consumer reads both: the same group
    rights_transactional_id: str


class Worker:
    """The parts both loops of one worker process share, and the loops themselves."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        guarantee: Guarantee,
        names: WorkerNames,
        assigned: Callable[[], bool],
    ) -> None:
        """``assigned`` says whether the runtime's consumer holds partitions now (readiness).
        Nothing here reaches a broker; ``prepare`` does."""
        self.settings = settings
        self.worker_id = worker_id
        self.exactly_once = guarantee == Guarantee.EXACTLY_ONCE
        self.names = names
        self.policies = load_policies(settings.policy_path)
        self.registry = Registry(settings.registry_conf())
        self.topics = ingest_topics(settings, self.policies)
        self.rights = rights_view(settings)
        self.processor = pipeline_processor(
            settings, self.policies, self.registry, worker_id=worker_id, is_stopped=self.rights.is_stopped
        )
        self.deciders = (
            DecidingProcesses(
                settings, worker_id=worker_id, processes=settings.decide_processes, is_stopped=self.rights.is_stopped
            )
            if settings.decide_processes
            else None
        )
        self.held = erasure_delay(settings)
        self.eraser = rights_processor(settings, self.held)
        self.telemetry = Telemetry(
            settings,
            group_id=names.group_id,
            topics=self.topics,
            registry=self.registry,
            policy=self.policies.latest,
            assigned=assigned,
        )
        self.telemetry.checks["rights_view"] = lambda: self.rights.healthy
        self.loops: list[BatchLoop[Any]] = []  # what pipeline_loop and erasure_loop made
        self.telemetry.checks["transactions_commit"] = lambda: all(loop.writing for loop in self.loops)
        metrics = self.telemetry.metrics
        self.quality = quality_monitor(settings, metrics.registry)
        self.rights_metrics = RightsMetrics(metrics.registry, lambda: len(self.rights.state), lambda: self.rights.lag)
        self.sealer: AuditSealer | None = None  # the audit chain, recovered by ``prepare``

    def prepare(self) -> None:
        """What needs the broker before any record is decided: the audit chain this worker's
        pipeline writes, recovered from what it last committed (raises ``ClusterError``); then the
        deciding processes, if any (raises ``FatalError``)."""
        self.sealer = audit_sealer(self.settings, self.names.transactional_id)
        if self.deciders is not None:
            self.deciders.start()

    def pipeline_loop(self, transport: Transport, *, offload: bool) -> BatchLoop[Outcome]:
        """The ingest pipeline over ``transport``: batch N+1 is decided while batch N's transaction
        commits (transactions still commit one after the other, in order).

        ``offload`` decides in a thread: for an event loop that carries the client's own Python
        (faust's aiokafka fetches and sends), which must go on while a batch is decided. Where the
        client works in C threads (confluent-kafka) the loop decides itself while the commit waits
        in a thread: a second Python thread deciding would share the one interpreter lock with the
        loop and gain nothing (docs/benchmarks.md, Findings)."""
        if self.sealer is None:
            raise RuntimeError("prepare() recovers the audit chain before the pipeline's loop is made")
        loop: BatchLoop[Outcome] = BatchLoop(
            transport,
            self.processor,
            offload=offload,
            pipelined=True,
            sealer=self.sealer,
            pack=self.processor.pack_contributions,
            decide=self.deciders,
        )
        metrics = self.telemetry.metrics
        loop.on_batch_seconds.append(metrics.batch_seconds.observe)
        loop.on_abort.append(metrics.transactions.labels("aborted").inc)

        def committed(inputs: Sequence[InMessage], outcomes: Sequence[Outcome]) -> None:
            metrics.transactions.labels("committed").inc()
            metrics.observe(zip(inputs, outcomes, strict=True))
            self.quality.offer(outcomes, drawn=self.deciders is not None)

        loop.on_committed.append(committed)
        self.loops.append(loop)
        return loop

    def erasure_loop(self, transport: Transport) -> BatchLoop[ErasureOutcome]:
        """Erasure over ``transport``: requests wait out the grace in the loop while it keeps reading
        (so one batch at a time); the index lookup blocks, so off the event loop."""
        loop: BatchLoop[ErasureOutcome] = BatchLoop(transport, self.eraser, offload=True, held=self.held)

        def committed(inputs: Sequence[InMessage], outcomes: Sequence[ErasureOutcome]) -> None:
            self.rights_metrics.observe(outcomes)
            for message, outcome in zip(inputs, outcomes, strict=True):
                log.info(
                    "rights request handled",
                    extra={"action": outcome.reason, "offset": message.offset, "tombstones": outcome.tombstones},
                )

        loop.on_committed.append(committed)
        self.loops.append(loop)
        return loop

    def start(self) -> None:
        """Telemetry, then the rights view read to its end (no record is decided before every
        stop-of-use request on file is known; blocks), then the quality sampler."""
        self.telemetry.start()
        self.rights.start()
        self.quality.start()
        settle_heap()
        log.info("ready: the rights view is read", extra={"stopped_subjects": len(self.rights.state)})

    def stop(self) -> None:
        if self.deciders is not None:
            self.deciders.stop()
        self.quality.stop()
        self.rights.stop()
        self.telemetry.stop()
