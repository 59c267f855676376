"""The faust-streaming application: ``faust -A streams.app worker`` or ``jointuse worker``.

The composed worker (``streams.worker.compose``) with faust's transports: one agent reads every
company's ingest topic as raw bytes (decoding is ours, so bad input becomes a dead letter instead of
crashing the agent) and runs the pipeline's loop; a second reads the rights topic and runs the
erasure loop. Each loop runs over a FaustTransport: whole fetches from faust's consumer, decided
off the event loop, committed with their offsets in one aiokafka transaction. Settings come from
the environment (``JOINTUSE_*``); ``JOINTUSE_WORKER_ID`` names the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, NoReturn

import faust
from faust.types import TP

from streams.errors import Exit, FatalError, JointUseError, exit_code_of
from streams.kafka.clients import MAX_MESSAGE_BYTES
from streams.kafka.company_client import ensure_reachable
from streams.runtime.faust_kafka import WholeFetchTransport, use_committed_reads
from streams.runtime.faust_sink import ConsumerBatches, FaustTransport
from streams.runtime.faust_tables import app_settings
from streams.runtime.loop import BatchLoop
from streams.settings import Settings, load_settings
from streams.topology import Topology
from streams.worker.compose import Worker, WorkerNames
from streams.worker.parts import default_worker_id

log = logging.getLogger("jointuse.worker")
# faust leaves the client library's loggers at DEBUG: every send would build a log record.
logging.getLogger("aiokafka").setLevel(logging.WARNING)


def names(settings: Settings, worker_id: str) -> WorkerNames:
    """One group for both agents (faust's one consumer reads the ingest and rights topics)."""
    group = f"{settings.topic_prefix}.pipeline"
    return WorkerNames(
        group_id=group,
        transactional_id=f"{group}.{worker_id}",
        rights_group_id=group,
        rights_transactional_id=f"{group}.{worker_id}.rights",
    )


def create_app(settings: Settings, group_id: str, worker_id: str) -> faust.App:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
        group_id,
        **app_settings(settings, worker_id),
        store="memory://",
        datadir=str(settings.data_dir / "{conf.id}"),
        broker_max_poll_records=settings.batch_size,
        stream_buffer_maxsize=settings.batch_size * 4,
        web_enabled=False,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
    )


def _stop_the_process(message: str, code: int) -> NoReturn:
    # faust would acknowledge the batch when the agent ends and commit it later (at least once), and
    # restart the agent: exit at once instead; the restarted worker resumes from the last transaction.
    log.error(message)
    os._exit(code)


settings = load_settings()
topology = Topology(settings.topic_prefix)
worker_id = settings.worker_id or default_worker_id()
named = names(settings, worker_id)
app = create_app(settings, named.group_id, worker_id)
# Committed input only, the consumer's membership for fencing, and whole fetches for the agents'
# batches (streams/runtime/faust_kafka.py): this app's consumer, not a patch of faust's classes.
use_committed_reads(app, WholeFetchTransport)
try:
    worker = Worker(
        settings,
        worker_id=worker_id,
        guarantee=settings.guarantee,
        names=named,
        assigned=lambda: bool(app.consumer.assignment()),
    )
except JointUseError as exc:
    _stop_the_process(f"the worker cannot start: {exc}", exit_code_of(exc))
try:  # the configuration first (exit 2), then the cluster (3), as the confluent runtime
    ensure_reachable(settings)
except JointUseError as exc:
    _stop_the_process(f"the worker cannot start: {exc}", exit_code_of(exc))
# One reader of the consumer for both agents (a message goes to the route of its topic), made by the
# first agent that asks, when faust's consumer exists; and the agents' loops, told of revocations.
started_batches: list[ConsumerBatches] = []
loops: list[BatchLoop[Any]] = []
# faust's aiokafka driver cannot subscribe by pattern, so the ingest topics are named from the
# policy's joint users (every version); a new joint user means a policy change and a worker restart.
ingest = app.topic(*worker.topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
# Rights requests: each is handled by one worker (erasure), while every worker's RightsView reads
# the whole topic on its own to know who asked to stop.
rights = app.topic(topology.rights, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def _batches() -> ConsumerBatches:
    if not started_batches:
        started_batches.append(
            ConsumerBatches(
                app.consumer,
                lambda topic: "rights" if topic == topology.rights else "ingest",
                timeout=settings.max_batch_wait_ms / 1000,
                max_pending=settings.batch_size * 4,
            )
        )
    return started_batches[0]


def _transport(route: str, max_records: int, transactional_id: str) -> FaustTransport:
    return FaustTransport(
        _batches(),
        route,
        max_records,
        kafka=settings.aiokafka_conf(),
        transactional_id=transactional_id if worker.exactly_once else None,
        group_id=named.group_id,
        commit_offsets=None if worker.exactly_once else _commit_offsets,
    )


async def _commit_offsets(offsets: dict[tuple[str, int], int]) -> None:
    """At least once: the group's offsets, through faust's consumer (its driver commits only the
    partitions it still owns)."""
    # ``_commit`` is the driver's commit of given offsets (faust's public ``commit`` commits what its
    # streams acknowledged, and no stream sees these messages); pinned with the faust version in
    # tests/runtime/test_faust_pin.py.
    await app.consumer._commit({TP(topic, partition): offset for (topic, partition), offset in offsets.items()})  # type: ignore[attr-defined]


def _leave_offsets_to_transactions(application: faust.App) -> None:
    """Under exactly-once, offsets are committed only inside our transactions. faust's own periodic
    commit reads the acknowledged offsets at one moment and sends them later, from another client;
    landing after a newer transaction it would move the group's offset back, and a restarted worker
    would process those records again (tests/runtime/test_crash.py kills and restarts workers and
    finds no input audited twice). This replaces a private method of faust's consumer:
    tests/runtime/test_faust_pin.py pins the faust version it was checked against."""

    async def offsets_are_in_the_transactions(offsets: Any) -> bool:
        return True

    # faust types the consumer as ConsumerT, which does not declare _commit; the driver class has it.
    application.consumer._commit = offsets_are_in_the_transactions  # type: ignore[attr-defined]


@app.on_partitions_revoked.connect
async def _forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Awaited by faust before the group rejoins: every loop finishes its transaction in flight and
    drops the revoked partitions from the batches it has not begun (their next owner, maybe this
    worker again, reads them from the committed offsets). Fencing does not depend on it (the group
    refuses a batch read under an older generation); it spares those batches' refusals."""
    (revoked,) = args  # faust sends the revoked partitions
    partitions = {(tp.topic, tp.partition) for tp in revoked}
    for batches in started_batches:
        batches.forget(partitions)
    await asyncio.gather(*(core.revoke(partitions) for core in loops))


async def _run(core: BatchLoop[Any], transport: FaustTransport) -> None:
    loops.append(core)
    try:
        await core.run()
    except FatalError as exc:
        _stop_the_process(f"the worker stops: {exc}", Exit.FATAL)
    finally:
        await transport.stop()


# The agents declare their topics (faust subscribes the group to them and owns assignment); their
# streams stay empty, because the messages are read in whole fetches (``_batches``).
@app.agent(ingest, concurrency=1)
async def pipeline(stream: faust.StreamT[Any]) -> None:
    if worker.exactly_once:
        _leave_offsets_to_transactions(app)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, worker.prepare)
        await loop.run_in_executor(None, worker.start)
    except (JointUseError, FatalError) as exc:  # FatalError: a deciding process could not start
        _stop_the_process(f"the worker cannot start: {exc}", exit_code_of(exc))
    transport = _transport("ingest", settings.batch_size, named.transactional_id)
    try:
        await _run(worker.pipeline_loop(transport, offload=True), transport)  # see pipeline_loop
    finally:
        worker.stop()


@app.agent(rights, concurrency=1)
async def erasure(stream: faust.StreamT[Any]) -> None:
    """Erasure requests become tombstones and notices, committed with the request's offset."""
    transport = _transport("rights", 50, named.rights_transactional_id)
    await _run(worker.erasure_loop(transport), transport)


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
