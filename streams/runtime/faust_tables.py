"""What a faust app that keeps tables over topics written in transactions needs (the subject index,
the statistics worker): committed messages only, offsets committed past the transactions' commit
markers but never past a message handed out and not processed, and only after the changelog
writes before them were acknowledged. The parts of faust and aiokafka this changes are in
``streams.runtime.faust_internals``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import faust

from streams.runtime.faust_app import app_settings
from streams.runtime.faust_internals import (
    CommittedReadsTransport,
    HandoverCountingProducer,
    TableOffsetsConsumer,
    offset_commit,
    replace_offset_commit,
    use_committed_reads,
)
from streams.settings import Settings

log = logging.getLogger("jointuse.tables")
READ_AGAIN_AFTER_SECONDS = 10.0  # a partition held at the same unprocessed message is read again after this


def table_app(settings: Settings, app_id: str, *, data_dir: Path, log_name: str, **web: Any) -> faust.App:
    """A faust app that keeps tables (RocksDB, or memory with JOINTUSE_INDEX_STORE=memory) in
    ``data_dir/<app id>``; ``web`` are faust's web settings (``web_enabled=False`` for none).
    The app id is in the path because faust names a table's store by the table alone: a store left
    by a deployment with another topic prefix would otherwise be taken for this one's (its offsets
    would be past the new changelog's end, so nothing would be recovered and the old rows kept).
    Its consumer reads committed messages only (``streams.runtime.faust_kafka``) and commits past
    transaction markers (``TableConsumer``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        **app_settings(settings, log_name),
        store="rocksdb://" if settings.index_store == "rocksdb" else "memory://",
        datadir=str(data_dir / app_id),
        # Table updates go to the changelog in batches (aiokafka sends each message on its own
        # otherwise: a produce request per event was most of the subject index's time).
        producer_linger_ms=20,
        **web,
    )
    use_committed_reads(app, TableTransport)  # before its topics and tables
    return app


def table_consumer(app: faust.App) -> TableConsumer:
    """The consumer of an app ``table_app`` made (faust types it as its base consumer)."""
    consumer = app.consumer
    if not isinstance(consumer, TableConsumer):
        raise TypeError("the app was not made by table_app: its consumer is not a TableConsumer")
    return consumer


def changelog_before_offsets(application: faust.App) -> None:
    """faust flushes its producer before it commits offsets, but its buffer's flush returns once no
    message went out for 0.1 s (``flush_atmost``), not when the buffer is empty (read in faust's
    code, not seen failing here). A row update could then still wait there while the offset of its
    event was committed, and a SIGKILL would lose it for good. Every commit waits until the buffer
    is empty and the client has had every write acknowledged (``CommitAfterTheChangelog``)."""
    commit = offset_commit(application)
    if isinstance(commit, CommitAfterTheChangelog):
        return  # the agent was restarted: installed already
    replace_offset_commit(application, CommitAfterTheChangelog(application, commit))


class CommitAfterTheChangelog:
    """A commit of offsets once the app's producer has had every write acknowledged. "Every" includes
    the write the buffer's sender has taken out of the queue and is still handing to the client
    (``_send_pending`` awaits aiokafka's ``send``, which waits for room in a batch): the queue is
    empty then, and the client's flush does not know that write yet (``HandoverCountingProducer``)."""

    def __init__(self, application: faust.App, commit: Callable[[Any], Awaitable[Any]]) -> None:
        self.application = application
        self.commit = commit

    async def __call__(self, offsets: Any) -> bool:
        producer = self.application.producer
        buffer = producer.buffer
        while buffer.size or getattr(buffer, "handing_over", 0):
            await buffer.flush()
            await asyncio.sleep(0.001)  # a write being handed over: let the sender finish it
        await producer.flush()
        return bool(await self.commit(offsets))


class TableConsumer(TableOffsetsConsumer):
    """The table apps' consumer: it commits past the transactions' commit markers
    (``TableOffsetsConsumer._add_gap``), and never past a message it handed out and that was not
    processed (``offset_to_commit``)."""

    async def getmany(self, timeout: float) -> Any:
        """faust's fetch, noting each message handed to the agents' streams (see ``offset_to_commit``)."""
        handed_out, acknowledged = self._handed_out, self.app.topics.acks_enabled_for
        async for tp, message in super().getmany(timeout):
            if acknowledged(message.topic):  # not a changelog read while recovering: never acknowledged
                handed_out[tp].add(message.offset)
            yield tp, message

    def offset_to_commit(self, tp: Any, faust_offset: Callable[[], int | None]) -> int | None:
        """faust's next offset to commit, never past a message handed out and not acknowledged.

        faust's stream skips a message taken from its queue while the flow is suspended (a
        rebalance beginning, a recovery) or read under an earlier generation, and does not
        acknowledge it. faust also drops messages waiting in a stream's queue when it resumes the
        flow (``FlowControlEvent.resume`` clears the queues), and at a start it resumes it twice:
        to read the changelogs, then after seeking the stream partitions to their committed
        offsets, a seek that waits on one request per partition while the fetcher already hands
        audit messages to the stream: one of them can be handed out and never taken by the stream
        while the ones after it are processed. faust's ``_new_offset`` then commits the
        acknowledged run after it anyway when it starts one past the committed offset
        (``min(acked) - committed == 1`` passes: faust reads that as a commit marker at the
        committed offset, which it never notes as a gap). A restarted subject index would so skip
        one audit event for good, and the row it makes would be missing
        (tests/rights/test_subject_index_e2e.py kills and restarts index workers while busy).

        The skipped message was handed out; a commit marker never is. So the offset is held at the
        first message handed out and not acknowledged, and the partition is read again from there
        (``_read_again``) as soon as a later message was processed (a stream takes a partition's
        messages in order, so the earlier one will not come): the tables' folds take a message read
        twice, or out of order, as once. Not only when faust would commit past it: with two or more
        messages dropped faust commits nothing more (its run must start at most one past the
        committed offset), and the partition would stay behind until the next rebalance. And when
        no later message was processed, once it has waited too long (``_waited_too_long``)."""
        first_outstanding = self.first_unprocessed(tp)
        if first_outstanding is None:
            self._waiting_since.pop(tp, None)
            return faust_offset()
        passed_over = max(self.acknowledged_in_order(tp) or (first_outstanding,)) > first_outstanding
        offset = faust_offset()
        waited_too_long = self._waited_too_long(tp, first_outstanding)
        if passed_over or waited_too_long or (offset is not None and offset > first_outstanding):
            self._read_again(tp, first_outstanding)
        if offset is None or offset <= first_outstanding:
            return offset
        self.held_back += 1
        committed = self.last_committed(tp)
        return first_outstanding if committed is None or first_outstanding > committed else None

    def _waited_too_long(self, tp: Any, first_outstanding: int) -> bool:
        """Whether ``first_outstanding`` has been the partition's first unprocessed message for
        ``read_again_after`` seconds. When faust drops the last messages it handed out (a queue
        cleared at a start), no later message is processed to show they were passed over, and
        without this they would wait for the next rebalance: a statistics worker whose backlog
        was dropped whole at its start would never publish. A message that is only slow is read
        twice, which the tables' folds take as once."""
        now = time.monotonic()
        offset, since = self._waiting_since.get(tp, (None, now))
        if offset != first_outstanding:
            self._waiting_since[tp] = (first_outstanding, now)
            return False
        return now - since >= self.read_again_after

    def partitions_to_commit(self, topics: Any) -> set[Any]:
        """faust's commit looks only at partitions with acknowledgements; a partition whose handed
        out messages were all dropped has none, and ``offset_to_commit`` must still see it."""
        return {
            tp
            for tp, offsets in self._handed_out.items()
            if offsets and (topics is None or tp in topics or tp.topic in topics)
        }

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """faust forgets what it acknowledged of the revoked partitions; so does this what it
        handed out. Else, the partition assigned again later, an offset handed out before and never
        processed would count as outstanding until a commit passed it, and below a committed offset
        this consumer does not know yet (none committed, or not yet read) it would be read again
        from there, and the statistics would wait for it."""
        for tp in revoked:
            self._handed_out.pop(tp, None)
            self._waiting_since.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def first_unprocessed(self, tp: Any) -> int | None:
        """The lowest offset of ``tp`` handed out and not acknowledged, at or above the committed
        offset (None: every message handed out was processed). Usually the next one a stream will
        take from its queue; below the last message processed, it is one that was skipped or dropped
        and will be read again (``offset_to_commit``): whoever tells how far the partition was applied
        must not count past it (the subject index's lag). Prunes what it finds processed."""
        outstanding = self._handed_out.get(tp)
        if not outstanding:
            return None
        outstanding -= self.acknowledged(tp)
        committed = self.last_committed(tp)
        if committed is not None:
            outstanding.difference_update([o for o in outstanding if o < committed])  # read again: done
        return min(outstanding, default=None)

    def _read_again(self, tp: Any, offset: int) -> None:
        """Seeks ``tp`` back to ``offset``, unless a seek there was made in the last few seconds (one
        commit interval may pass before the message read again is acknowledged)."""
        now = time.monotonic()
        if self._seeks.get(tp, (None, 0.0))[0] == offset and now - self._seeks[tp][1] < self.read_again_after:
            return
        self._seeks[tp] = (offset, now)
        log.info(
            "a message handed out was not processed (dropped by faust at a rebalance or a start); "
            "its partition is read again from it",
            extra={"topic": tp.topic, "partition": tp.partition, "offset": offset},
        )
        self._seeking.add(asyncio.ensure_future(self._seek_quietly(tp, offset)))

    async def _seek_quietly(self, tp: Any, offset: int) -> None:
        try:
            await self.seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: its next owner reads from the committed offset
            log.info("a partition could not be read again", extra={"error": type(exc).__name__})
        finally:
            self._seeking = {task for task in self._seeking if not task.done()}

    def committed_offset(self, tp: Any) -> int:
        """The partition's committed offset as this consumer knows it (0 before the first commit)."""
        return int(self.last_committed(tp) or 0)

    @cached_property
    def _seeks(self) -> dict[Any, tuple[int, float]]:
        return {}

    @cached_property
    def _waiting_since(self) -> dict[Any, tuple[int, float]]:
        """Per partition: its first unprocessed offset, and since when (``_waited_too_long``)."""
        return {}

    @cached_property
    def _seeking(self) -> set[asyncio.Future[None]]:  # the seeks under way (a task kept until it ends)
        return set()

    @cached_property
    def _handed_out(self) -> defaultdict[Any, set[int]]:
        """Per partition: offsets handed to the streams, not yet acknowledged (pruned at commits)."""
        return defaultdict(set)

    held_back = 0  # commits ``offset_to_commit`` held back (per consumer instance once counted)
    read_again_after = READ_AGAIN_AFTER_SECONDS  # a first unprocessed message unchanged this long is read again


class TableTransport(CommittedReadsTransport):
    Consumer = TableConsumer
    Producer = HandoverCountingProducer
