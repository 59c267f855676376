"""The confluent runtime's worker: the composed worker's two loops over confluent-kafka transports,
the pipeline in the calling thread and erasure in another, until SIGTERM / SIGINT."""

from __future__ import annotations

import threading

from streams.errors import FatalError
from streams.logs import configure as configure_logging
from streams.messages import Outcome
from streams.runtime.confluent import Runner, RunnerConfig
from streams.runtime.loop import LoopStats
from streams.settings import Guarantee, Settings
from streams.topology import Topology
from streams.worker.compose import Worker, WorkerNames
from streams.worker.parts import stop_on_signals


def names(settings: Settings, worker_id: str) -> WorkerNames:
    prefix = settings.topic_prefix
    return WorkerNames(
        group_id=f"{prefix}.pipeline-confluent",
        transactional_id=f"{prefix}.pipeline-confluent.{worker_id}",
        rights_group_id=f"{prefix}.pipeline-confluent-rights",
        rights_transactional_id=f"{prefix}.pipeline-confluent-rights.{worker_id}",
    )


class ConfluentWorker:
    """The composed worker with its two runners (built, not started)."""

    def __init__(self, settings: Settings, *, worker_id: str, guarantee: Guarantee, batch_size: int) -> None:
        topology = Topology(settings.topic_prefix)
        named = names(settings, worker_id)
        self.worker = Worker(
            settings,
            worker_id=worker_id,
            guarantee=guarantee,
            names=named,
            assigned=lambda: bool(self.pipeline.assigned),
        )
        self.worker.prepare()
        kafka = settings.kafka_common()
        self.pipeline: Runner[Outcome] = Runner(
            RunnerConfig(
                kafka=kafka,
                group_id=named.group_id,
                transactional_id=named.transactional_id,
                guarantee=guarantee,
                batch_size=batch_size,
                poll_timeout=settings.max_batch_wait_ms / 1000,
                subscription=(topology.ingest_pattern(),),
            ),
            lambda transport: self.worker.pipeline_loop(transport, offload=False),  # see pipeline_loop
        )
        self.erasure = Runner(
            RunnerConfig(
                kafka=kafka,
                group_id=named.rights_group_id,
                transactional_id=named.rights_transactional_id,
                guarantee=guarantee,
                batch_size=50,
                poll_timeout=0.2,
                subscription=(topology.rights,),
            ),
            self.worker.erasure_loop,
        )

    def stop(self) -> None:
        self.pipeline.stop()
        self.erasure.stop()

    def run_pipeline_only(self, *, max_idle_seconds: float) -> LoopStats:
        """The pipeline's loop alone in this process until idle that long, then everything closed
        (in-process tests and tools: no telemetry served, no erasure, no rights view read)."""
        try:
            return self.pipeline.run(max_idle_seconds=max_idle_seconds)
        finally:
            self.erasure.close()
            self.worker.stop()


def run_worker(
    settings: Settings,
    *,
    worker_id: str,
    guarantee: Guarantee,
    max_idle_seconds: float | None = None,
    batch_size: int | None = None,
) -> LoopStats:
    """Runs the worker until SIGTERM / SIGINT (or, with ``max_idle_seconds``, until the pipeline is
    idle that long), with batches of ``batch_size`` records (``settings.batch_size`` unless given).
    Raises ``FatalError`` when it must stop, a ``JointUseError`` when it cannot start
    (``streams.errors.exit_code_of`` maps both)."""
    configure_logging(worker_id=worker_id)
    runtime = ConfluentWorker(
        settings, worker_id=worker_id, guarantee=guarantee, batch_size=batch_size or settings.batch_size
    )

    stop_on_signals(runtime.stop)
    erasure_failure: list[FatalError] = []

    def erase() -> None:
        try:
            runtime.erasure.run()
        except FatalError as exc:  # the worker stops with it: erasure must not silently end
            erasure_failure.append(exc)
            runtime.pipeline.stop()

    runtime.worker.start()
    erasing = threading.Thread(target=erase, name="erasure", daemon=True)
    erasing.start()
    try:
        stats = runtime.pipeline.run(max_idle_seconds=max_idle_seconds)
    finally:
        runtime.erasure.stop()
        erasing.join(30)
        runtime.worker.stop()
    if erasure_failure:
        raise erasure_failure[0]
    return stats
