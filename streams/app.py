"""The faust-streaming application: ``faust -A streams.app worker`` or ``jointuse worker``.

One agent reads every company's ingest topic as raw bytes (decoding is ours, so bad input becomes a
dead letter instead of crashing the agent); a second reads the rights topic for erasure. Each runs
the core's BatchLoop (``streams.runtime.loop``) over a FaustTransport: batches from the stream,
decided off the event loop, committed with their offsets in one aiokafka transaction. Settings come
from the environment (``JOINTUSE_*``); ``JOINTUSE_WORKER_ID`` names the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import faust
from faust.types import TP

from streams.errors import JointUseError
from streams.observability.logs import logging_config
from streams.observability.metrics import RightsMetrics
from streams.observability.telemetry import Telemetry
from streams.policy.loader import load_policies
from streams.runtime.faust_kafka import use_committed_reads
from streams.runtime.faust_sink import ConsumerBatches, FaustTransport
from streams.runtime.loop import EXIT_FATAL, BatchLoop, FatalError
from streams.runtime.wiring import (
    audit_sealer,
    default_worker_id,
    erasure_delay,
    ingest_topics,
    pipeline_processor,
    quality_monitor,
    rights_processor,
    rights_view,
    settle_heap,
)
from streams.serde.registry import Registry
from streams.settings import Settings, load_settings
from streams.topology import Topology

log = logging.getLogger("jointuse.worker")
# faust leaves the client library's loggers at DEBUG: every send would build a log record.
logging.getLogger("aiokafka").setLevel(logging.WARNING)
BATCH_WITHIN_SECONDS = 0.05


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}.pipeline"


def create_app(settings: Settings) -> faust.App:
    credentials = None
    if settings.security_protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_secret(),
            mechanism=settings.sasl_mechanism,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
        group_id(settings),
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=credentials,
        store="memory://",
        datadir=str(settings.data_dir / "{conf.id}"),
        autodiscover=False,
        topic_allow_declare=False,  # topics come from `jointuse topics create`
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10,
        broker_heartbeat_interval=2,
        broker_max_poll_records=settings.batch_size,
        stream_buffer_maxsize=settings.batch_size * 4,
        web_enabled=False,
        logging_config=logging_config(settings.log_level, settings.worker_id or default_worker_id()),
        producer_max_request_size=8_388_608,
        consumer_max_fetch_size=8_388_608,
    )


class Worker:
    """What both agents of one worker process share: settings, telemetry and the rights view.
    Built when the first agent starts (not at import: `faust --help` must not reach a broker)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_id = settings.worker_id or default_worker_id()
        self.exactly_once = settings.guarantee == "exactly_once"
        self.policies = load_policies(settings.policy_path)
        self.registry = Registry(settings.registry_conf())
        self.rights = rights_view(settings)
        self.rights_metrics: RightsMetrics | None = None  # set by the pipeline agent, read by erasure
        self.started_batches: ConsumerBatches | None = None
        self.loops: list[BatchLoop[Any]] = []  # the agents' loops, told of revoked partitions

    @property
    def batches(self) -> ConsumerBatches:
        """One reader of the consumer for both agents (a message goes to the route of its topic);
        made by the first agent that asks, when faust's consumer exists."""
        if self.started_batches is None:
            rights_topic = Topology(self.settings.topic_prefix).rights
            self.started_batches = ConsumerBatches(
                app.consumer,
                lambda topic: "rights" if topic == rights_topic else "ingest",
                timeout=BATCH_WITHIN_SECONDS,
                max_pending=self.settings.batch_size * 4,
            )
        return self.started_batches

    def transactional_id(self, suffix: str = "") -> str:
        """Stable per worker and agent: a restarted worker fences its predecessor. Also the name of
        the agent's audit chains (one producer writes them at a time)."""
        return f"{self.settings.topic_prefix}.pipeline.{self.worker_id}{suffix}"

    def sink(self, suffix: str = "") -> dict[str, Any]:
        return {
            "kafka": self.settings.aiokafka_conf(),
            "transactional_id": self.transactional_id(suffix) if self.exactly_once else None,
            "group_id": group_id(self.settings),
            "commit_offsets": None if self.exactly_once else self.commit_offsets,
        }

    async def commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        """At least once: the group's offsets, through faust's consumer (its driver commits only
        the partitions it still owns)."""
        # ``_commit`` is the driver's commit of given offsets (faust's public ``commit`` commits
        # what its streams acknowledged, and no stream sees these messages); pinned with the faust
        # version in tests/runtime/test_faust_pin.py.
        await app.consumer._commit({TP(topic, partition): offset for (topic, partition), offset in offsets.items()})  # type: ignore[attr-defined]


settings = load_settings()
topology = Topology(settings.topic_prefix)
app = create_app(settings)
# Committed input only, the consumer's membership for fencing, and whole fetches for the agents'
# batches (streams/runtime/faust_kafka.py): this app's consumer, not a patch of faust's classes.
use_committed_reads(app, whole_fetches=True)
worker = Worker(settings)
# faust's aiokafka driver cannot subscribe by pattern, so the ingest topics are named from the
# policy's joint users (every version); a new joint user means a policy change and a worker restart.
ingest = app.topic(
    *ingest_topics(settings, worker.policies),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
# Rights requests: each is handled by one worker (erasure), while every worker's RightsView reads
# the whole topic on its own to know who asked to stop.
rights = app.topic(topology.rights, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def _leave_offsets_to_transactions(application: faust.App) -> None:
    """Under exactly-once, offsets are committed only inside our transactions. faust's own periodic
    commit reads the acknowledged offsets at one moment and sends them later, from another client;
    landing after a newer transaction it would move the group's offset back, and a restarted worker
    would process those records again (the crash test caught exactly that). This replaces a private
    method of faust's consumer: tests/runtime/test_faust_pin.py pins the faust version it was
    checked against."""

    async def offsets_are_in_the_transactions(offsets: Any) -> bool:
        return True

    # faust types the consumer as ConsumerT, which does not declare _commit; the driver class has it.
    application.consumer._commit = offsets_are_in_the_transactions  # type: ignore[attr-defined]


def _stop_the_process(exc: FatalError) -> None:
    # faust would acknowledge the batch when the agent ends and commit it later (at least once), and
    # restart the agent: exit at once instead; the restarted worker resumes from the last transaction.
    log.error("the worker stops: %s", exc)
    os._exit(EXIT_FATAL)


@app.on_partitions_revoked.connect
async def _forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Awaited by faust before the group rejoins. aiokafka's transactional offsets carry no group
    generation, so the broker would accept a commit that lands after the rebalance: every loop
    finishes its transaction in flight here and drops the revoked partitions from the batches it
    has not begun (their next owner, maybe this worker again, reads them from the committed
    offsets)."""
    (revoked,) = args  # faust sends the revoked partitions
    partitions = {(tp.topic, tp.partition) for tp in revoked}
    if worker.started_batches is not None:
        worker.started_batches.forget(partitions)
    await asyncio.gather(*(core.revoke(partitions) for core in worker.loops))


# The agents declare their topics (faust subscribes the group to them and owns assignment); their
# streams stay empty, because the messages are read in whole fetches (``batches``).
@app.agent(ingest, concurrency=1)
async def pipeline(stream: faust.StreamT[Any]) -> None:
    if worker.exactly_once:
        _leave_offsets_to_transactions(app)
    loop = asyncio.get_running_loop()
    try:
        processor = pipeline_processor(
            settings, worker.policies, worker.registry, worker_id=worker.worker_id, is_stopped=worker.rights.is_stopped
        )
        telemetry = Telemetry(
            settings,
            group_id=group_id(settings),
            topics=ingest_topics(settings, worker.policies),
            registry=worker.registry,
            policy=worker.policies.latest,
            assigned=lambda: bool(app.consumer.assignment()),
        )
        metrics = telemetry.metrics
        quality = quality_monitor(settings, metrics.registry)
        telemetry.checks["rights_view"] = lambda: worker.rights.healthy
        worker.rights_metrics = RightsMetrics(
            metrics.registry, lambda: len(worker.rights.state), lambda: worker.rights.lag
        )
        # The writer of this agent's audit chains is its transactional producer (one at a time).
        sealer = await loop.run_in_executor(None, audit_sealer, settings, worker.transactional_id())
        telemetry.start()
        # No record is decided before every stop-of-use request on file is known.
        await loop.run_in_executor(None, worker.rights.start)
        quality.start()
    except JointUseError as exc:
        log.error("the worker cannot start: %s", exc)
        os._exit(2)
    settle_heap()
    transport = FaustTransport(worker.batches, "ingest", settings.batch_size, **worker.sink())
    # Under exactly-once, batch N+1 is decided (in a thread) while batch N's transaction commits;
    # transactions still commit one after the other, in order. At least once, a batch's offsets are
    # committed right after its outputs were acknowledged, before the next batch is taken.
    core = BatchLoop(transport, processor, offload=True, pipelined=worker.exactly_once, sealer=sealer)
    worker.loops.append(core)
    core.on_batch_seconds.append(metrics.batch_seconds.observe)
    core.on_abort.append(metrics.transactions.labels("aborted").inc)
    core.on_committed.append(lambda inputs, outcomes: metrics.transactions.labels("committed").inc())
    core.on_committed.append(lambda inputs, outcomes: metrics.observe(zip(inputs, outcomes, strict=True)))
    core.on_committed.append(lambda inputs, outcomes: quality.offer(list(outcomes)))
    try:
        await core.run()
    except FatalError as exc:
        _stop_the_process(exc)
    finally:
        quality.stop()
        worker.rights.stop()
        telemetry.stop()
        await transport.stop()


@app.agent(rights, concurrency=1)
async def erasure(stream: faust.StreamT[Any]) -> None:
    """Erasure requests become tombstones and notices, committed with the request's offset."""
    transport = FaustTransport(worker.batches, "rights", 50, **worker.sink(".rights"))
    # Requests wait out the erasure grace in the loop while it keeps reading; the index lookup
    # blocks, so off the loop.
    held = erasure_delay(settings)
    core = BatchLoop(transport, rights_processor(settings, held), offload=True, held=held)
    worker.loops.append(core)

    def observe(inputs: Any, outcomes: Any) -> None:
        if worker.rights_metrics is not None:  # the pipeline agent's metrics registry, once it started
            worker.rights_metrics.observe(list(outcomes))
        for message, outcome in zip(inputs, outcomes, strict=True):
            log.info(
                "rights request handled",
                extra={"action": outcome.reason, "offset": message.offset, "tombstones": outcome.tombstones},
            )

    core.on_committed.append(observe)
    try:
        await core.run()
    except FatalError as exc:
        _stop_the_process(exc)
    finally:
        await transport.stop()


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
