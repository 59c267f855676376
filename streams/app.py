"""The faust-streaming application: ``faust -A streams.app worker`` or ``jointuse worker``.

One agent reads every company's ingest topic as raw bytes (decoding is ours, so bad input becomes a
dead letter instead of crashing the agent), takes events in batches, decides them off the event loop,
and commits each batch's deliveries, dead letters, audit events and offsets in one transaction.
Settings come from the environment (``JOINTUSE_*``), ``JOINTUSE_WORKER_ID`` names the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import faust

from streams.errors import JointUseError
from streams.logs import logging_config
from streams.metrics import RightsMetrics
from streams.policy.loader import load_policies
from streams.rights.erasure import RightsProcessor
from streams.serde.registry import Registry
from streams.settings import Settings, load_settings
from streams.streaming.processor import DEPENDENCY_ERRORS, InMessage, Outcome
from streams.streaming.transactional_sink import TransactionalSink
from streams.streaming.worker import (
    default_worker_id,
    ingest_topics,
    pipeline_processor,
    quality_monitor,
    rights_processor,
    rights_view,
)
from streams.telemetry import Telemetry
from streams.topology import Topology

log = logging.getLogger("jointuse.worker")
# faust leaves the client library's loggers at DEBUG: every send would build a log record.
logging.getLogger("aiokafka").setLevel(logging.WARNING)
BATCH_SIZE = int(os.environ.get("JOINTUSE_BATCH_SIZE", "1000"))
BATCH_WITHIN_SECONDS = 0.05
DEPENDENCY_ATTEMPTS = 6  # about 30 s of backoff before the worker exits and restarts
GUARANTEE = os.environ.get("JOINTUSE_GUARANTEE", "exactly_once")


def worker_id() -> str:
    return os.environ.get("JOINTUSE_WORKER_ID") or default_worker_id()


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}.pipeline"


def aiokafka_conf(settings: Settings) -> dict[str, Any]:
    """aiokafka client settings (the faust transport's library), built here at the edge."""
    conf: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers.split(",")}
    if settings.security_protocol != "PLAINTEXT":
        conf["security_protocol"] = settings.security_protocol
    if settings.security_protocol.startswith("SASL"):
        conf["sasl_mechanism"] = settings.sasl_mechanism
        conf["sasl_plain_username"] = settings.sasl_username
        conf["sasl_plain_password"] = settings.sasl_secret()
    return conf


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
        broker_max_poll_records=BATCH_SIZE,
        stream_buffer_maxsize=BATCH_SIZE * 4,
        web_enabled=False,
        logging_config=logging_config(os.environ.get("JOINTUSE_LOG_LEVEL", "INFO")),
        producer_max_request_size=8_388_608,
        consumer_max_fetch_size=8_388_608,
    )


settings = load_settings()
topology = Topology(settings.topic_prefix)
app = create_app(settings)
policies = load_policies(settings.policy_path)
# faust's aiokafka driver cannot subscribe by pattern, so the ingest topics are named from the
# policy's joint users (every version); a new joint user means a policy change and a worker restart.
ingest = app.topic(
    *ingest_topics(settings, policies),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
# Rights requests: each is handled by one worker (erasure), while every worker's RightsView reads
# the whole topic on its own to know who asked to stop.
rights = app.topic(topology.rights, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class _Pipeline:
    """State of this worker's agent: the processor, the transactional sink and the telemetry."""

    def __init__(self) -> None:
        registry = Registry(settings.registry_conf())
        self.rights = rights_view(settings)
        self.processor = pipeline_processor(
            settings, policies, registry, worker_id=worker_id(), is_stopped=self.rights.is_stopped
        )
        self.telemetry = Telemetry(
            settings,
            group_id=group_id(settings),
            topics=ingest_topics(settings, policies),
            registry=registry,
            policy=policies.latest,
            assigned=lambda: bool(app.consumer.assignment()),
        )
        self.metrics = self.telemetry.metrics
        self.quality = quality_monitor(settings, self.metrics.registry)
        self.telemetry.checks["rights_view"] = lambda: self.rights.healthy
        self.rights_metrics = RightsMetrics(self.metrics.registry, lambda: len(self.rights.state))
        self.sink = TransactionalSink(
            kafka=aiokafka_conf(settings),
            transactional_id=(
                f"{settings.topic_prefix}.pipeline.{worker_id()}" if GUARANTEE == "exactly_once" else None
            ),
            group_id=group_id(settings),
            on_abort=self.metrics.transactions.labels("aborted").inc,
        )

    def decide(self, messages: Sequence[InMessage]) -> list[Outcome]:
        """The batch's outcomes. A record never raises here; a dependency that does not answer (the
        registry, on a schema id's first use) is retried with backoff, a few times, then raised."""
        for attempt in range(1, DEPENDENCY_ATTEMPTS + 1):
            try:
                with self.metrics.batch_seconds.time():
                    return [self.processor.process(m) for m in messages]
            except DEPENDENCY_ERRORS as exc:
                if attempt == DEPENDENCY_ATTEMPTS:
                    raise
                log.warning("a dependency is unavailable; retrying the batch", extra={"error": str(exc)})
                time.sleep(min(0.5 * 2**attempt, 10.0))
        raise AssertionError("unreachable")


_running: list[_Pipeline] = []


def _leave_offsets_to_transactions(application: faust.App) -> None:
    """Under exactly-once, offsets are committed only inside our transactions. faust's own periodic
    commit reads the acknowledged offsets at one moment and sends them later, from another client;
    landing after a newer transaction it would move the group's offset back, and a restarted worker
    would process those records again (the crash test caught exactly that)."""

    async def offsets_are_in_the_transactions(offsets: Any) -> bool:
        return True

    # faust types the consumer as ConsumerT, which does not declare _commit; the driver class has it.
    application.consumer._commit = offsets_are_in_the_transactions  # type: ignore[attr-defined]


def _in_message(event: Any) -> InMessage:
    message = event.message
    headers = message.headers or []
    return InMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000),
        headers=list(headers.items()) if isinstance(headers, dict) else list(headers),
    )


@app.agent(ingest, concurrency=1)
async def pipeline(stream: faust.StreamT[Any]) -> None:
    if GUARANTEE == "exactly_once":
        _leave_offsets_to_transactions(app)
    try:
        state = _Pipeline()
        _running.append(state)
        state.telemetry.start()
    except JointUseError as exc:
        log.error("the worker cannot start: %s", exc)
        os._exit(2)
    loop = asyncio.get_running_loop()
    try:
        # No record is decided before every stop-of-use request on file is known.
        await loop.run_in_executor(None, state.rights.start)
        state.quality.start()
    except JointUseError as exc:
        log.error("the worker cannot start: %s", exc)
        os._exit(2)
    # Under exactly-once, batch N+1 is decided (in the executor) while batch N's transaction
    # commits (on the loop); transactions still commit one after the other, in order. Under
    # at-least-once faust commits what was acknowledged, so each batch is written before the next.
    overlap = GUARANTEE == "exactly_once"
    committing: asyncio.Task[None] | None = None
    try:
        # take_events is on faust.Stream but missing from the StreamT protocol faust ships.
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_SECONDS):  # type: ignore[attr-defined]
            messages = [_in_message(e) for e in events]
            # Decoding and deciding are CPU work (and the first lookup of a schema id is HTTP):
            # off the loop, so heartbeats, fetches and the previous commit go on.
            deciding = loop.run_in_executor(None, state.decide, messages)
            if committing is not None:
                await committing
            try:
                outcomes = await deciding
            except Exception:
                # Only a dependency outage gets here (records never raise). faust would acknowledge the
                # batch when this iteration ends: exit instead, and resume from the last transaction.
                log.exception("the batch could not be decided; exiting so that nothing is lost")
                os._exit(70)
            committing = asyncio.ensure_future(_commit(state, messages, outcomes))
            if not overlap:
                await committing
    finally:
        if committing is not None and not committing.done():
            await committing
        state.quality.stop()
        state.rights.stop()
        state.telemetry.stop()
        await state.sink.stop()


async def _commit(state: _Pipeline, messages: list[InMessage], outcomes: list[Outcome]) -> None:
    try:
        await state.sink.write([out for o in outcomes for out in o.messages], _offsets(messages))
    except Exception:
        # take_events acknowledges a batch when its iteration ends, whatever happened, and faust
        # would then commit offsets whose outputs were never written (at-least-once). Exit at once
        # instead: the restarted worker resumes from the last committed transaction.
        log.exception("the batch could not be committed; exiting so that nothing is lost")
        os._exit(70)
    state.metrics.transactions.labels("committed").inc()
    state.metrics.observe(zip(messages, outcomes, strict=True))
    state.quality.offer(outcomes)


def _offsets(messages: Sequence[InMessage]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for m in messages:
        offsets[(m.topic, m.partition)] = max(offsets.get((m.topic, m.partition), -1), m.offset + 1)
    return offsets


def _process_all(processor: RightsProcessor, messages: Sequence[InMessage]) -> list[Outcome]:
    return [processor.process(m) for m in messages]


@app.agent(rights, concurrency=1)
async def erasure(stream: faust.StreamT[Any]) -> None:
    """Erasure requests become tombstones and notices, committed with the request's offset."""
    processor = rights_processor(settings)
    sink = TransactionalSink(
        kafka=aiokafka_conf(settings),
        transactional_id=(
            f"{settings.topic_prefix}.pipeline.{worker_id()}.rights" if GUARANTEE == "exactly_once" else None
        ),
        group_id=group_id(settings),
    )
    loop = asyncio.get_running_loop()
    try:
        async for events in stream.take_events(50, within=0.2):  # type: ignore[attr-defined]
            messages = [_in_message(e) for e in events]
            try:
                # The lookup reads the audit topic: blocking, so off the loop.
                outcomes = await loop.run_in_executor(None, _process_all, processor, messages)
                await sink.write([out for o in outcomes for out in o.messages], _offsets(messages))
            except Exception:
                log.exception("rights requests could not be handled; exiting so that none is lost")
                os._exit(70)
            for state in _running:  # the pipeline agent's metrics registry, once it started
                state.rights_metrics.observe(outcomes)
            for message, outcome in zip(messages, outcomes, strict=True):
                log.info(
                    "rights request handled",
                    extra={"action": outcome.reason, "offset": message.offset, "tombstones": len(outcome.deliveries)},
                )
    finally:
        await sink.stop()


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
