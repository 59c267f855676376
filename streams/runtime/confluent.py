"""The confluent-kafka transport: a plain consume-transform-produce loop under the core's BatchLoop.

Exactly once: one Kafka transaction per batch, the consumed offsets sent with the consumer group's
metadata (KIP-447: a zombie's commit after a rebalance is fenced). At least once: the outputs are
flushed, then the offsets committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.errors import ClusterError
from streams.kafka import clients
from streams.kafka.produce import produce_waiting
from streams.messages import InMessage, OutMessage
from streams.runtime.loop import BatchLoop, LoopStats, OutcomeT
from streams.runtime.transaction import ErrorKind, Offsets
from streams.settings import Guarantee

log = logging.getLogger("jointuse.worker")


@dataclass(frozen=True)
class RunnerConfig:
    kafka: dict[str, Any]
    group_id: str
    transactional_id: str
    batch_size: int  # records per batch: the worker's settings say how many (Settings.batch_size)
    guarantee: Guarantee = Guarantee.EXACTLY_ONCE
    poll_timeout: float = 0.05  # the longest a batch waits to fill (JOINTUSE_MAX_BATCH_WAIT_MS)
    subscription: tuple[str, ...] = ()  # topics or ^regexes


class ConfluentWriter:
    """The write side with confluent-kafka: a producer, and the consumer whose positions it commits
    (in the transaction, with the group's metadata; or, at least once, by the consumer).

    The steps that wait on the broker run in a thread (librdkafka releases the GIL while it
    waits), so a pipelined loop decides the next batch meanwhile."""

    def __init__(
        self,
        new_producer: Callable[[], Producer],
        consumer: Consumer,
        *,
        transactional: bool,
    ) -> None:
        """``new_producer`` makes the producer, and its replacements with the same transactional id
        (``renew``)."""
        self.new_producer = new_producer
        self.producer = new_producer()
        self.consumer = consumer
        self.transactional = transactional

    async def begin(self) -> None:
        self.producer.begin_transaction()

    async def write(self, messages: Sequence[OutMessage]) -> None:
        for message in messages:
            produce_waiting(self.producer, message)
        if not self.transactional:
            remaining = await asyncio.to_thread(self.producer.flush, 60)
            if remaining:
                raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, f"{remaining} outputs unacknowledged"))

    async def send_offsets(self, offsets: Offsets, membership: object) -> None:
        """``membership`` is not needed here: the consumer's group metadata now is the batch's.
        librdkafka runs the revocation callback inside ``consume``, in the loop's own thread, so a
        revocation is seen (``drop_revoked``) before any later batch and never during a transaction's
        steps; a partition kept through a cooperative rebalance keeps its position."""
        positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        if self.transactional:
            group = self.consumer.consumer_group_metadata()
            await asyncio.to_thread(self.producer.send_offsets_to_transaction, positions, group, 60)
        else:
            await asyncio.to_thread(self.consumer.commit, offsets=positions, asynchronous=False)

    async def commit(self) -> None:
        await asyncio.to_thread(self.producer.commit_transaction, 60)

    async def abort(self) -> None:
        await asyncio.to_thread(self.producer.abort_transaction, 60)

    async def renew(self) -> None:
        """A new producer with the same transactional id (initialising it fences the old one and
        aborts what it left open)."""
        self.producer = await asyncio.to_thread(self.new_producer)

    def classify(self, error: BaseException) -> ErrorKind:
        if isinstance(error, KafkaException) and isinstance(error.args[0], KafkaError):
            kafka_error: KafkaError = error.args[0]
            if kafka_error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                return ErrorKind.FATAL
            if kafka_error.fatal() or kafka_error.code() == KafkaError._FENCED:
                # librdkafka's fatal errors of a transactional producer: fenced (another instance, or
                # the coordinator after an outage longer than the transaction timeout). A new
                # producer can go on; one fenced again and again is another instance's (the loop).
                return ErrorKind.RENEW
            if kafka_error.txn_requires_abort():
                return ErrorKind.ABORTABLE
            if kafka_error.retriable():
                return ErrorKind.RETRIABLE
            return ErrorKind.ABORTABLE  # a transaction can always be aborted and the batch done again
        if isinstance(error, ClusterError):
            return ErrorKind.ABORTABLE
        return ErrorKind.FATAL


class ConfluentTransport(ConfluentWriter):
    can_rewind = True

    def __init__(self, config: RunnerConfig, subscription: list[str]) -> None:
        self.config = config
        transactional = config.guarantee == Guarantee.EXACTLY_ONCE
        self._assigned: set[tuple[str, int]] = set()
        self.on_revoked: list[Callable[[set[tuple[str, int]]], None]] = []
        transactional_id = config.transactional_id if transactional else None
        super().__init__(
            lambda: clients.producer(config.kafka, transactional_id=transactional_id),
            clients.group_consumer(config.kafka, config.group_id),
            transactional=transactional,
        )
        self.consumer.subscribe(
            subscription, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((p.topic, p.partition) for p in partitions)
        if partitions:  # rare, and what an operator asks first when a worker sits idle
            log.info("partitions assigned", extra={"partitions": _names(partitions), "owned": len(self._assigned)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        if partitions:
            log.info("partitions revoked", extra={"partitions": _names(partitions), "owned": len(self._assigned)})
        self._assigned.difference_update(revoked)
        for revoke in self.on_revoked:
            revoke(revoked)

    def assigned(self) -> set[tuple[str, int]]:
        return set(self._assigned)

    def membership(self) -> None:
        return None  # see ``send_offsets``

    async def fetch(self) -> Sequence[InMessage]:
        """What is already here, without waiting (it came while the last batch was decided and
        committed: it has waited); else what comes until the batch is full or ``poll_timeout`` has
        passed (librdkafka's batch consume waits for both, however early the first record came)."""
        batch = self.consumer.consume(self.config.batch_size, 0) or self.consumer.consume(
            self.config.batch_size, self.config.poll_timeout
        )
        return [in_message(m) for m in batch if not _is_error(m)]

    async def rewind(self, positions: Offsets) -> None:
        for (topic, partition), offset in positions.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                pass  # revoked meanwhile: its new owner starts at the committed offset

    def close(self) -> None:
        try:
            self.consumer.close()
        except RuntimeError:
            pass  # already closed


class Runner(Generic[OutcomeT]):
    """A BatchLoop over a ConfluentTransport, run in the calling thread until ``stop()``."""

    def __init__(self, config: RunnerConfig, loop: Callable[[ConfluentTransport], BatchLoop[OutcomeT]]) -> None:
        """``loop`` makes the loop over this runner's transport (``streams.worker.compose``)."""
        self.config = config
        self.transport = ConfluentTransport(config, list(config.subscription))
        self.loop = loop(self.transport)
        # A batch fetched before a rebalance would be fenced (KIP-447) and aborted: dropped instead.
        self.transport.on_revoked.append(self.loop.drop_revoked)

    @property
    def stats(self) -> LoopStats:
        return self.loop.stats

    @property
    def assigned(self) -> set[tuple[str, int]]:
        return self.transport.assigned()

    def close(self) -> None:
        """Of a runner that will not run (``run`` closes its own)."""
        self.transport.close()

    def run(self, *, max_idle_seconds: float | None = None) -> LoopStats:
        """Runs until ``stop()`` (or, with ``max_idle_seconds``, until idle that long). Raises
        ``FatalError`` when the worker must stop."""
        try:
            return asyncio.run(self.loop.run(max_idle_seconds=max_idle_seconds))
        finally:
            self.transport.close()

    def stop(self) -> None:
        """From any thread (a signal handler, the erasure thread): the loop ends after its batch."""
        self.loop.stop()


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(partitions, key=lambda p: (p.topic, p.partition)))


def _is_error(message: Message) -> bool:
    error = message.error()
    if error is None:
        return False
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consume error", extra={"error": str(error)})
    return True


def in_message(message: Message) -> InMessage:
    headers = message.headers() or []
    return InMessage(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        timestamp_ms=message.timestamp()[1],
        headers=list(headers.items()) if isinstance(headers, dict) else list(headers),
    )
