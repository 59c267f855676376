"""The faust-streaming pipeline worker (``jointuse worker``): ``build_pipeline_app``.

The composed worker (``streams.worker.compose``) with faust's transports: one agent reads every
company's ingest topic as raw bytes (decoding is ours, so bad input becomes a dead letter instead of
crashing the agent) and runs the pipeline's loop; a second reads the rights topic and runs the
erasure loop. Each loop runs over a FaustTransport: whole fetches from faust's consumer, decided
off the event loop, committed with their offsets in one aiokafka transaction.
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
from streams.runtime.faust_app import app_settings, raw_topic
from streams.runtime.faust_internals import (
    WholeFetchTransport,
    offset_commit,
    replace_offset_commit,
    use_committed_reads,
)
from streams.runtime.faust_sink import ConsumerBatches, FaustTransport
from streams.runtime.loop import BatchLoop
from streams.settings import Settings
from streams.topology import Topology
from streams.worker.compose import Worker, WorkerNames

log = logging.getLogger("jointuse.worker")


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


def build_pipeline_app(settings: Settings, worker_id: str) -> faust.App:
    """The pipeline's faust app for ``worker_id`` (``settings`` give its guarantee and batch size),
    with its agents and hooks. Raises a ``JointUseError`` for what the configuration names and
    cannot be used (policies, schemas, keys: exit 2); reaches no broker."""
    return PipelineAgents(settings, worker_id).app


async def _offsets_are_in_the_transactions(offsets: Any) -> bool:
    return True


def _stop_the_process(message: str, code: int) -> NoReturn:
    # faust would acknowledge the batch when the agent ends and commit it later (at least once), and
    # restart the agent: exit at once instead; the restarted worker resumes from the last transaction.
    log.error(message)
    os._exit(code)


class PipelineAgents:
    """The app's two agents over one composed worker, and the reader of faust's consumer they share."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.settings = settings
        self.topology = Topology(settings.topic_prefix)
        self.names = names(settings, worker_id)
        self.app = create_app(settings, self.names.group_id, worker_id)
        # Committed input only, the consumer's membership for fencing, and whole fetches for the
        # agents' batches (streams/runtime/faust_internals.py): this app's consumer, not a patch of faust's classes.
        use_committed_reads(self.app, WholeFetchTransport)
        self.worker = Worker(
            settings,
            worker_id=worker_id,
            guarantee=settings.guarantee,
            names=self.names,
            assigned=lambda: bool(self.app.consumer.assignment()),
        )
        self.batches: ConsumerBatches | None = None  # made by the first agent that asks (``_batches``)
        # faust's aiokafka driver cannot subscribe by pattern, so the ingest topics are named from the
        # policy's joint users (every version); a new joint user means a policy change and a restart.
        ingest = raw_topic(self.app, *self.worker.topics)
        # Rights requests: each is handled by one worker (erasure), while every worker's RightsView
        # reads the whole topic on its own to know who asked to stop.
        rights = raw_topic(self.app, self.topology.rights)
        # The agents declare their topics (faust subscribes the group to them and owns assignment);
        # their streams stay empty, because the messages are read in whole fetches (``_batches``).
        self.app.agent(ingest, name="streams.app.pipeline", concurrency=1)(self.pipeline)
        self.app.agent(rights, name="streams.app.erasure", concurrency=1)(self.erasure)
        self.app.on_partitions_revoked.connect(self.forget_revoked)

    def _batches(self) -> ConsumerBatches:
        """One reader of the consumer for both agents (a message goes to the route of its topic),
        made when faust's consumer exists."""
        if self.batches is None:
            rights = self.topology.rights
            self.batches = ConsumerBatches(
                self.app.consumer,
                lambda topic: "rights" if topic == rights else "ingest",
                timeout=self.settings.max_batch_wait_ms / 1000,
                max_pending=self.settings.batch_size * 4,
            )
        return self.batches

    def _transport(self, route: str, max_records: int, transactional_id: str) -> FaustTransport:
        exactly_once = self.worker.exactly_once
        return FaustTransport(
            self._batches(),
            route,
            max_records,
            kafka=self.settings.aiokafka_conf(),
            transactional_id=transactional_id if exactly_once else None,
            group_id=self.names.group_id,
            commit_offsets=None if exactly_once else self._commit_offsets,
        )

    async def _commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        """At least once: the group's offsets, through faust's consumer (its driver commits only the
        partitions it still owns)."""
        commit = offset_commit(self.app)
        await commit({TP(topic, partition): offset for (topic, partition), offset in offsets.items()})

    def _leave_offsets_to_transactions(self) -> None:
        """Under exactly-once, offsets are committed only inside our transactions. faust's own periodic
        commit reads the acknowledged offsets at one moment and sends them later, from another client;
        landing after a newer transaction it would move the group's offset back, and a restarted worker
        would process those records again (tests/runtime/test_crash.py kills and restarts workers and
        finds no input audited twice)."""
        replace_offset_commit(self.app, _offsets_are_in_the_transactions)

    async def forget_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Awaited by faust before the group rejoins: every loop finishes its transaction in flight and
        drops the revoked partitions from the batches it has not begun (their next owner, maybe this
        worker again, reads them from the committed offsets). Fencing does not depend on it (the group
        refuses a batch read under an older generation); it spares those batches' refusals."""
        (revoked,) = args  # faust sends the revoked partitions
        partitions = {(tp.topic, tp.partition) for tp in revoked}
        if self.batches is not None:
            self.batches.forget(partitions)
        await asyncio.gather(*(core.revoke(partitions) for core in self.worker.loops))

    async def _run(self, core: BatchLoop[Any], transport: FaustTransport) -> None:
        try:
            await core.run()
        except FatalError as exc:
            _stop_the_process(f"the worker stops: {exc}", Exit.FATAL)
        finally:
            await transport.stop()

    async def pipeline(self, stream: faust.StreamT[Any]) -> None:
        if self.worker.exactly_once:
            self._leave_offsets_to_transactions()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.worker.prepare)
            await loop.run_in_executor(None, self.worker.start)
        except (JointUseError, FatalError) as exc:  # FatalError: a deciding process could not start
            _stop_the_process(f"the worker cannot start: {exc}", exit_code_of(exc))
        transport = self._transport("ingest", self.settings.batch_size, self.names.transactional_id)
        try:
            await self._run(self.worker.pipeline_loop(transport, offload=True), transport)  # see pipeline_loop
        finally:
            self.worker.stop()

    async def erasure(self, stream: faust.StreamT[Any]) -> None:
        """Erasure requests become tombstones and notices, committed with the request's offset."""
        transport = self._transport("rights", 50, self.names.rights_transactional_id)
        await self._run(self.worker.erasure_loop(transport), transport)
