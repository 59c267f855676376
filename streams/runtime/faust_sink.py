"""The faust transport: batches from a faust stream, outputs and offsets through aiokafka's
transactional producer (faust's own client library), under the core's BatchLoop.

faust's ``processing_guarantee="exactly_once"`` is not used: it has open reports of duplicates after
kills and rebalances. Under exactly-once the agent's batches are committed only in our transactions
(see ``streams.app`` for why faust's own offset commit is turned off). This transport does not seek
(faust owns the consumer's positions): an aborted batch is written again in a new transaction. The
batch is still in hand and the records after it are not yet taken, so this is the same as rewinding
to the last committed position.

Fencing (``streams.runtime.faust_kafka``): a batch's offsets go to the transaction with the member
id and generation it was read under, so the group coordinator refuses the commit of a worker that
was paused past its session and lost its partitions, and of any batch read before a rebalance; the
transaction is aborted and the batch dropped (``ErrorKind.GROUP_CHANGED``): aiokafka's consumer
rejoins and starts its new assignment at the committed offsets. A worker that is not paused
finishes its transaction and drops the revoked partitions before the group rejoins
(``BatchLoop.revoke``), so its commits are rarely refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import IllegalStateError, ProducerFenced
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.structs import TopicPartition

from streams.errors import ClusterError
from streams.kafka.clients import MAX_MESSAGE_BYTES, TRANSACTION_RETRY_BACKOFF_MS
from streams.kafka.partitioner import partition_of
from streams.messages import InMessage, OutMessage
from streams.runtime.faust_internals import GroupFencedProducer, abort_with, fencing_unsupported, transaction_waiter
from streams.runtime.faust_kafka import FencingUnsupported, GroupMember, GroupRefusedOffsets
from streams.runtime.transaction import ErrorKind, Offsets
from streams.settings import TRANSACTION_TIMEOUT_MS

log = logging.getLogger("jointuse.worker")
RENEW_STOP_SECONDS = 10.0


class UnwrittenOutputs(Exception):
    """A record batch of the transaction was refused for good: the transaction can only be aborted."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"the broker refused part of the batch's outputs ({cause}); the transaction is aborted")


class AiokafkaSink:
    """The write side: begin / write / send offsets / commit / abort with aiokafka."""

    can_rewind = False

    def __init__(
        self,
        *,
        kafka: dict[str, Any],
        transactional_id: str | None,
        group_id: str,
        commit_offsets: Callable[[Offsets], Awaitable[object]] | None = None,
    ) -> None:
        """``transactional_id=None`` gives at-least-once: outputs are flushed, then the offsets are
        committed with ``commit_offsets`` (the consumer's commit). A transactional sink sends a
        batch's offsets with the ``GroupMember`` it was read under (KIP-447 fencing)."""
        self.group_id = group_id
        self.commit_offsets = commit_offsets
        self.transactional = transactional_id is not None
        self._client = GroupFencedProducer if self.transactional else AIOKafkaProducer
        self._config: dict[str, Any] = {
            **kafka,
            "transactional_id": transactional_id,
            "enable_idempotence": True,
            "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS,
            "max_request_size": MAX_MESSAGE_BYTES,
            "max_batch_size": 1_048_576,
            "linger_ms": 5,
            "retry_backoff_ms": TRANSACTION_RETRY_BACKOFF_MS,
        }
        self.producer = self._client(**self._config)
        self.started = False
        self._fencing_checked = False  # the broker takes what fencing needs (checked once)
        self._in_flight: list[asyncio.Future[Any]] = []

    async def start(self) -> None:
        if not self.started:
            await self._start_producer()
        if self.transactional and not self._fencing_checked:
            unsupported = await fencing_unsupported(self.producer.client)
            if unsupported is not None:
                raise FencingUnsupported(unsupported)  # fatal: this runtime cannot hold exactly-once here
            self._fencing_checked = True

    async def _start_producer(self) -> None:
        try:
            await self.producer.start()
        except Exception:
            # A producer that failed to start (the broker away) is not started twice: the next
            # attempt starts a new one.
            failed, self.producer = self.producer, self._client(**self._config)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(failed.stop(), RENEW_STOP_SECONDS)
            raise
        self.started = True

    async def stop(self) -> None:
        # Also a producer never started (a route without traffic, or the one a renewal made): aiokafka
        # logs each producer left unclosed as an error when the worker exits.
        await self.producer.stop()
        self.started = False

    async def begin(self) -> None:
        await self.start()
        await self.producer.begin_transaction()

    async def write(self, messages: Sequence[OutMessage]) -> None:
        await self.start()
        self._in_flight = await self._send_batched(messages)
        if not self.transactional:  # at least once: acknowledged before faust commits the offsets
            await asyncio.gather(*self._in_flight)
            self._in_flight = []

    async def send_offsets(self, offsets: Offsets, membership: object) -> None:
        if self.transactional:
            commit = {TopicPartition(topic, partition): offset for (topic, partition), offset in offsets.items()}
            if not isinstance(membership, GroupMember):  # read while not joined: refused before it is sent
                membership = GroupMember(self.group_id, -1, "", None)
            await self.producer.send_offsets_to_transaction(commit, membership)
        elif self.commit_offsets is not None:  # at least once: after this batch was written
            await self.commit_offsets(offsets)

    async def commit(self) -> None:
        # Every record batch of the transaction is acknowledged before the commit is asked for.
        # aiokafka fails a batch the broker refuses for good (never a retriable error: those it
        # retries without end) but leaves the transaction committable, and its commit only waits
        # for the batches to end: the batch's offsets would be committed without that output, and
        # its inputs never read again. Here such a failure leaves the transaction to be aborted, as
        # the Java client does.
        in_flight, self._in_flight = self._in_flight, []
        sent = await asyncio.gather(*in_flight, return_exceptions=True)
        failed = next((result for result in sent if isinstance(result, BaseException)), None)
        if failed is not None:
            refused = failed if isinstance(failed, ProducerFenced) else UnwrittenOutputs(type(failed).__name__)
            abort_with(self.producer, refused)
            raise refused from failed
        await self.producer.commit_transaction()

    async def abort(self) -> None:
        self._in_flight = []
        await self.producer.abort_transaction()

    async def renew(self) -> None:
        """A new producer with the same transactional id: it fences this one and aborts what it left
        open when it starts (the next ``begin``)."""
        old, self.producer, in_flight, self._in_flight = (
            self.producer,
            self._client(**self._config),
            self._in_flight,
            [],
        )
        self.started = False
        # The old producer's errors are known: asyncio must not log each as "never retrieved".
        waiter = transaction_waiter(old)  # None before a begin
        for future in [*in_flight, waiter] if waiter is not None else in_flight:
            future.add_done_callback(_retrieve)
        with contextlib.suppress(Exception):  # a fenced producer may fail to stop cleanly: it is dropped
            await asyncio.wait_for(old.stop(), RENEW_STOP_SECONDS)

    async def rewind(self, positions: Offsets) -> None:
        raise NotImplementedError("this transport does not seek: the loop writes an aborted batch again")

    def classify(self, error: BaseException) -> ErrorKind:
        if isinstance(error, FencingUnsupported):
            return ErrorKind.FATAL
        if isinstance(error, UnwrittenOutputs):
            return ErrorKind.ABORTABLE
        if isinstance(error, GroupRefusedOffsets):
            return ErrorKind.GROUP_CHANGED
        if isinstance(error, ProducerFenced):
            # aiokafka raises it for INVALID_PRODUCER_EPOCH too, which is also what a transaction
            # aborted by the coordinator after its timeout gets (a broker outage longer than it).
            return ErrorKind.RENEW
        if isinstance(error, AIOKafkaError):
            return ErrorKind.RETRIABLE if getattr(error, "retriable", False) else ErrorKind.ABORTABLE
        if isinstance(error, ClusterError):
            return ErrorKind.ABORTABLE
        return ErrorKind.FATAL

    async def _send_batched(self, messages: Sequence[OutMessage]) -> list[asyncio.Future[Any]]:
        """Appends the messages to one record batch per partition and sends the batches: far less
        per-message work than ``send()``, which awaits and makes a future for every message. Keys
        are partitioned with murmur2, as ``send()`` and Java clients do."""
        by_partition: dict[tuple[str, int], list[OutMessage]] = {}
        # Looked up per batch (from the client's metadata, refreshed in the background), so that
        # added partitions are used as every other client uses them.
        known: dict[str, list[int]] = {}
        for message in messages:
            partitions = known.get(message.topic)
            if partitions is None:
                partitions = sorted(await self.producer.partitions_for(message.topic))
                known[message.topic] = partitions
            key = message.key
            if message.partition is not None:
                partition = message.partition
            elif key is not None:  # an empty key is hashed too, as send() does
                partition = partitions[partition_of(key, len(partitions))]
            else:
                partition = random.choice(partitions)  # as aiokafka's send() does without a key
            by_partition.setdefault((message.topic, partition), []).append(message)
        sends = []
        for (topic, partition), group in by_partition.items():
            batch = self.producer.create_batch()
            for message in group:
                headers = _headers(message)
                # A full batch refuses the message (an empty one takes any): send it, start the next.
                while batch.append(key=message.key, value=message.value, timestamp=None, headers=headers) is None:
                    sends.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
            sends.append(await self.producer.send_batch(batch, topic, partition=partition))
        return sends


class ConsumerBatches:
    """Whole fetches from faust's consumer (``Consumer.getmany``), split by route: one reader for
    every agent of the app, because one consumer holds all their topics.

    faust's own fetcher hands each message to the agents' streams one at a time (a conductor
    callback and a ``wait_first`` per message), a per-message path that would be most of the faust
    runtime's cost (docs/architecture.md, where a record's time goes). ``streams.app`` turns that
    fetcher off. faust still owns the group: subscription, assignment, flow control during
    rebalances, and the seek to the committed offsets when partitions are assigned (inside
    ``getmany``).

    A route's pending messages are bounded: while one route has ``max_pending`` waiting, nothing
    more is fetched (the consumer's own fetch buffer then fills and pauses the fetches). Messages
    of revoked partitions are dropped (``forget``): their new owner reads them from the committed
    offset."""

    def __init__(
        self,
        consumer: Any,
        route_of: Callable[[str], str],
        *,
        timeout: float,
        max_pending: int,
    ) -> None:
        self._consumer = consumer
        self._route_of = route_of
        self._timeout = timeout
        self._max_pending = max_pending
        self._pending: dict[str, list[InMessage]] = {}
        self._pending_member: GroupMember | None = None  # the membership the pending messages were read under
        self._lock = asyncio.Lock()
        self._revocations = 0  # how many times partitions were revoked (``forget``)

    async def take(self, route: str, max_records: int) -> tuple[list[InMessage], GroupMember | None]:
        """Up to ``max_records`` messages of ``route`` (empty when none came within the timeout), and
        the group membership they were read under."""
        async with self._lock:
            behind = any(len(waiting) >= self._max_pending for waiting in self._pending.values())
            if self._pending.get(route) or not behind:
                if not self._pending.get(route):
                    await self._fetch()
                return self._split(route, max_records)
        # Another route is behind: let it catch up. Not holding the lock, so that it can take its
        # batches meanwhile (holding it stalled the busy route a whole batch wait each time).
        await asyncio.sleep(self._timeout)
        async with self._lock:
            return self._split(route, max_records)

    def _split(self, route: str, max_records: int) -> tuple[list[InMessage], GroupMember | None]:
        waiting = self._pending.get(route, [])
        batch, self._pending[route] = waiting[:max_records], waiting[max_records:]
        return batch, self._pending_member

    async def _fetch(self) -> None:
        """One fetch into the routes' pending messages, unless the group changed while it ran.

        The consumer runs in faust's thread and the revocation callback on this loop, so a fetch can
        return records read before a revocation that has already been handled here. Their partitions
        are then their next owner's (maybe this worker's again, from the committed offsets: the new
        assignment's positions), and committing them under the new generation would be accepted by
        the group although they were read under the old one. So: records of a fetch during which a
        revocation came are dropped; if the generation changed too, the records may already be of
        the new assignment, read past its committed offsets, so the consumer is also sent back to
        the committed offsets. Messages still pending from an earlier membership are dropped for the
        same reason once the membership changes."""
        member = self._member()
        if member != self._pending_member:
            self._pending = {}
            self._pending_member = member
        revocations = self._revocations
        fetched = [in_message(message) async for _, message in self._consumer.getmany(timeout=self._timeout)]
        if self._member() != member:
            if self._consumer.assignment():  # none: nothing to read again (aiokafka refuses the seek)
                log.info("the group changed during a fetch; reading again from the committed offsets")
                try:
                    await self._consumer.seek_to_committed()
                except (AssertionError, IllegalStateError):
                    pass  # revoked meanwhile: the next assignment starts at the committed offsets anyway
            return
        if self._revocations != revocations:
            return  # read under the revoked assignment: the next one starts at the committed offsets
        for message in fetched:
            self._pending.setdefault(self._route_of(message.topic), []).append(message)

    def _member(self) -> GroupMember | None:
        group_member = getattr(self._consumer, "group_member", None)  # faust's plain consumer has none
        return group_member() if group_member is not None else None

    def forget(self, revoked: set[tuple[str, int]]) -> None:
        self._revocations += 1
        for route, waiting in self._pending.items():
            self._pending[route] = [m for m in waiting if (m.topic, m.partition) not in revoked]


class FaustTransport(AiokafkaSink):
    """Fetches one route's batches from faust's consumer (``ConsumerBatches``)."""

    def __init__(self, batches: ConsumerBatches, route: str, max_records: int, **sink: Any) -> None:
        super().__init__(**sink)
        self._batches = batches
        self._route = route
        self._max_records = max_records
        self._membership: GroupMember | None = None

    async def fetch(self) -> Sequence[InMessage] | None:
        batch, self._membership = await self._batches.take(self._route, self._max_records)
        return batch

    def membership(self) -> GroupMember | None:
        return self._membership

    def assigned(self) -> set[tuple[str, int]]:
        return set()  # not needed: this transport does not rewind, so nothing is filtered by it


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def in_message(message: Any) -> InMessage:
    """A faust ``Message`` (timestamps in seconds) as an InMessage."""
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


def _headers(message: OutMessage) -> list[tuple[str, bytes]]:
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in message.headers]
