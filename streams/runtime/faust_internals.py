"""Every part of faust and aiokafka this project replaces, overrides, calls or reads that they do not
offer: their private attributes, and one their types do not declare. Each is named below as
``module:Class.attribute`` and checked by tests/runtime/test_faust_pin.py on the faust and aiokafka
versions it was written against (a new version of either must be checked again). They are changed
in subclasses and on this project's own instances only: importing this module changes no class of
faust or aiokafka. Why each is needed is told where it is used.

aiokafka's transactional producer: offsets checked against the group (``GroupFencedProducer``,
KIP-447), and aborts that reach the broker (``BrokerAbortedTransactions``):
- ``aiokafka.producer.producer:AIOKafkaProducer._sender`` replaced, read
- ``aiokafka.producer.producer:AIOKafkaProducer._txn_manager`` replaced, read
- ``aiokafka.producer.producer:AIOKafkaProducer._message_accumulator`` read
- ``aiokafka.producer.message_accumulator:MessageAccumulator._txn_manager`` replaced
- ``aiokafka.producer.sender:Sender._acks`` read
- ``aiokafka.producer.sender:Sender._message_accumulator`` read
- ``aiokafka.producer.sender:Sender._retry_backoff`` read
- ``aiokafka.producer.sender:Sender._request_timeout_ms`` read
- ``aiokafka.producer.sender:Sender._txn_manager`` read
- ``aiokafka.producer.sender:Sender._do_txn_offset_commit`` overridden
- ``aiokafka.producer.sender:Sender._find_coordinator`` called
- ``aiokafka.producer.sender:Sender._coordinator_dead`` called
- ``aiokafka.producer.sender:TxnOffsetCommitHandler._sender`` read
- ``aiokafka.producer.sender:TxnOffsetCommitHandler._offsets`` read
- ``aiokafka.producer.sender:TxnOffsetCommitHandler._group_id`` read
- ``aiokafka.producer.sender:TxnOffsetCommitHandler._default_backoff`` read
- ``aiokafka.producer.transaction_manager:TransactionManager._transition_to`` called
- ``aiokafka.producer.transaction_manager:TransactionManager._pending_txn_offsets`` read
- ``aiokafka.producer.transaction_manager:TransactionManager._transaction_waiter`` read

aiokafka's consumer and client: committed messages only, the stable offset fetch (KIP-447), the
member's generation, the API versions a broker agreed on:
- ``aiokafka.consumer.consumer:AIOKafkaConsumer._isolation_level`` replaced
- ``aiokafka.consumer.consumer:AIOKafkaConsumer._coordinator`` read
- ``aiokafka.consumer.group_coordinator:GroupCoordinator._do_fetch_commit_offsets`` replaced
- ``aiokafka.consumer.group_coordinator:GroupCoordinator._send_req`` called
- ``aiokafka.consumer.group_coordinator:GroupCoordinator._group_instance_id`` read
- ``aiokafka.client:AIOKafkaClient._get_conn`` called
- ``aiokafka.conn:AIOKafkaConnection._versions`` read

faust's consumer, its thread and its producer buffer: whole fetches for the pipeline's agents,
offsets committed in our transactions or after the changelog, commits past transaction markers:
- ``faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer`` overridden
- ``faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._consumer`` read
- ``faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._ensure_consumer`` called
- ``faust.transport.drivers.aiokafka:Consumer._new_consumer_thread`` overridden
- ``faust.transport.drivers.aiokafka:Consumer._thread`` read
- ``faust.transport.drivers.aiokafka:Consumer._drain_messages`` overridden
- ``faust.transport.drivers.aiokafka:Consumer._commit`` called, replaced
- ``faust.transport.drivers.aiokafka:Consumer._add_gap`` overridden
- ``faust.transport.drivers.aiokafka:Consumer._new_offset`` overridden
- ``faust.transport.drivers.aiokafka:Consumer._filter_tps_with_pending_acks`` overridden
- ``faust.transport.drivers.aiokafka:Consumer._acked`` read
- ``faust.transport.drivers.aiokafka:Consumer._acked_index`` read
- ``faust.transport.drivers.aiokafka:Consumer._committed_offset`` read
- ``faust.transport.producer:ProducerBuffer._send_pending`` replaced
- ``faust.tables.manager:TableManager.recovery`` read (``TableManagerT`` does not declare it)
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiokafka.errors as errors
import faust
from aiokafka import AIOKafkaProducer
from aiokafka.client import CoordinationType
from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler
from aiokafka.producer.transaction_manager import TransactionManager, TransactionState
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.runtime.faust_kafka import (
    NO_GENERATION,
    NOT_THE_GROUP_S_MEMBER,
    OFFSET_FETCH,
    PRODUCER_FENCED,
    TXN_OFFSET_COMMIT,
    UNSTABLE_OFFSET_COMMIT,
    GroupMember,
    GroupRefusedOffsets,
    GroupTxnOffsetCommitRequest,
    NotAGroupMember,
    StableOffsetFetchRequest,
    UnstableOffsets,
    seek_to_committed_or_start,
)

# --- aiokafka's transactional producer ------------------------------------------------------------


class GroupFencedTxnOffsetCommitHandler(TxnOffsetCommitHandler):  # type: ignore[misc]
    """aiokafka's handler with the member in the request, and the group's refusal an abortable error
    (aiokafka's own raises it out of the sender task, which ends the producer)."""

    def __init__(self, sender: Sender, offsets: dict[TopicPartition, OffsetAndMetadata], member: GroupMember) -> None:
        super().__init__(sender, offsets, member.group_id)
        self.member = member

    def create_request(self) -> GroupTxnOffsetCommitRequest:
        txn_manager = self._sender._txn_manager
        by_topic: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
        for tp, offset in sorted(self._offsets.items()):
            by_topic[tp.topic].append((tp.partition, offset.offset, offset.metadata))
        return GroupTxnOffsetCommitRequest(
            transactional_id=txn_manager.transactional_id,
            member=self.member,
            producer_id=txn_manager.producer_id,
            producer_epoch=txn_manager.producer_epoch,
            topics=list(by_topic.items()),
        )

    def handle_response(self, resp: Any) -> float | None:
        txn_manager = self._sender._txn_manager
        for topic, partitions, _ in resp.topics:
            for partition, error_code, _ in partitions:
                tp = TopicPartition(topic, partition)
                if error_code == 0:
                    txn_manager.offset_committed(tp, self._offsets[tp].offset, self._group_id)
                    continue
                if error_code in NOT_THE_GROUP_S_MEMBER:
                    refusal = errors.for_code(error_code).__name__
                    txn_manager.error_transaction(GroupRefusedOffsets(f"the group refused the offsets ({refusal})"))
                    return None
                if error_code in (errors.InvalidProducerEpoch.errno, PRODUCER_FENCED):
                    raise errors.ProducerFenced()
                error_type = errors.for_code(error_code)
                if error_type in (
                    errors.CoordinatorNotAvailableError,
                    errors.NotCoordinatorError,
                    errors.RequestTimedOutError,
                ):
                    self._sender._coordinator_dead(CoordinationType.GROUP)
                    return float(self._default_backoff)
                if error_type in (errors.CoordinatorLoadInProgressError, errors.UnknownTopicOrPartitionError):
                    return float(self._default_backoff)
                if error_type is errors.TransactionalIdAuthorizationFailed:
                    raise error_type(txn_manager.transactional_id)
                # Anything else: the transaction is aborted and the batch done again (never a dead sender).
                txn_manager.error_transaction(error_type(self._group_id))
                return None
        return None


class BrokerAbortedTransactions(TransactionManager):  # type: ignore[misc]  # aiokafka has no type information
    """aiokafka's transaction manager, except that an abortable error keeps what the transaction
    holds at the broker (its partitions, added or still to add, and its group), so that the abort
    sends EndTxn(ABORT) for them, as the Java client does. aiokafka's clears them, and its abort
    then ends an "empty" transaction without telling the broker."""

    def error_transaction(self, exc: BaseException) -> None:
        self._transition_to(TransactionState.ABORTABLE_ERROR)
        for _, _, offsets_sent in self._pending_txn_offsets:
            offsets_sent.set_exception(exc)
        self._pending_txn_offsets.clear()  # refused or failed: never part of the transaction
        if not self._transaction_waiter.done():  # a second error in the same transaction
            self._transaction_waiter.set_exception(exc)


class GroupFencedSender(Sender):  # type: ignore[misc]
    """aiokafka's sender, committing a transaction's offsets with the member set by the producer."""

    member: GroupMember | None = None

    async def _do_txn_offset_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], group_id: str) -> None:
        if not offsets:
            return
        member = self.member
        if member is None or member.group_id != group_id:
            self._txn_manager.error_transaction(NotAGroupMember())
            return
        try:
            node_id = await self._find_coordinator(CoordinationType.GROUP, group_id)
        except errors.GroupAuthorizationFailedError as exc:
            self._txn_manager.error_transaction(exc)
            return
        await GroupFencedTxnOffsetCommitHandler(self, offsets, member).do(node_id)


class GroupFencedProducer(AIOKafkaProducer):  # type: ignore[misc]
    """A transactional producer whose offsets the group coordinator checks (KIP-447)."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        plain: Any = self.__dict__["_sender"]  # aiokafka's, replaced below
        aborting = BrokerAbortedTransactions(
            plain._txn_manager.transactional_id, plain._txn_manager.transaction_timeout_ms
        )
        # The one transaction manager of the producer, its accumulator and its sender.
        self._txn_manager = aborting
        self._message_accumulator._txn_manager = aborting
        self._sender = GroupFencedSender(
            plain.client,
            acks=plain._acks,
            txn_manager=aborting,
            message_accumulator=plain._message_accumulator,
            retry_backoff_ms=int(plain._retry_backoff * 1000),
            request_timeout_ms=plain._request_timeout_ms,
        )

    async def abort_transaction(self) -> None:
        # A refused commit leaves its error on the transaction's waiter, which aiokafka replaces
        # without reading it: asyncio would log "Future exception was never retrieved" each time.
        waiter = transaction_waiter(self)
        if waiter is not None and waiter.done() and not waiter.cancelled():
            waiter.exception()
        await super().abort_transaction()

    async def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        """``group`` is the consumer's ``GroupMember`` when the batch was read. A member without a
        generation sends nothing (raises ``NotAGroupMember``): the broker would not check such
        offsets against the group."""
        if not isinstance(group, GroupMember):
            raise TypeError("offsets are sent with the consumer's GroupMember, not a group id")
        if group.generation_id == NO_GENERATION or not group.member_id:
            raise NotAGroupMember()
        self._sender.member = group
        await super().send_offsets_to_transaction(offsets, group.group_id)


def transaction_waiter(producer: Any) -> asyncio.Future[Any] | None:
    """What the producer's transaction in progress ends with (None before its first transaction)."""
    return producer._txn_manager._transaction_waiter if producer._txn_manager else None


def abort_with(producer: Any, error: BaseException) -> None:
    """Leaves the producer's transaction to be aborted, with ``error`` as what its commit raises."""
    producer._txn_manager.error_transaction(error)


# --- aiokafka's consumer and client ---------------------------------------------------------------


async def fetch_stable_offsets(coordinator: Any, partitions: Any) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets of ``partitions``, once no open transaction holds newer ones.
    Replaces aiokafka's ``GroupCoordinator._do_fetch_commit_offsets`` (same errors, same result);
    its caller retries retriable errors after its backoff."""
    by_topic: dict[str, list[int]] = collections.defaultdict(list)
    for tp in partitions:
        by_topic[tp.topic].append(tp.partition)
    response = await coordinator._send_req(StableOffsetFetchRequest(coordinator.group_id, list(by_topic.items())))
    raise_offset_fetch_error(coordinator, response.error_code)
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for topic, topic_partitions, _ in response.topics:
        for partition, offset, _epoch, metadata, error_code, _ in topic_partitions:
            if error_code == errors.UnknownTopicOrPartitionError.errno:
                continue
            raise_offset_fetch_error(coordinator, error_code)
            if offset >= 0:  # -1: nothing committed for this partition
                offsets[TopicPartition(topic, partition)] = OffsetAndMetadata(offset, metadata or "")
    return offsets


def raise_offset_fetch_error(coordinator: Any, error_code: int) -> None:
    if error_code == 0:
        return
    if error_code == UNSTABLE_OFFSET_COMMIT:
        raise UnstableOffsets("a transaction of another member holds offsets of these partitions")
    error_type = errors.for_code(error_code)
    if error_type is errors.NotCoordinatorForGroupError:
        coordinator.coordinator_dead()
    if error_type is errors.GroupAuthorizationFailedError:
        raise error_type(coordinator.group_id)
    raise error_type()


async def fencing_unsupported(client: Any) -> str | None:
    """Why the broker cannot fence this runtime's transactions, or None: it must take
    TxnOffsetCommit v3 and OffsetFetch v7 (Kafka 2.5 and later). ``client`` is a started client;
    the versions are those a connection to one of its brokers agreed on."""
    connection = await client._get_conn(client.get_random_node())
    if connection is None:  # the broker is away: not an answer about its versions
        raise errors.KafkaConnectionError("no connection to a broker to read its API versions")
    versions: dict[int, tuple[int, int]] = getattr(connection, "_versions", None) or {}
    for api_key, needed, name in ((TXN_OFFSET_COMMIT, 3, "TxnOffsetCommit"), (OFFSET_FETCH, 7, "OffsetFetch")):
        if versions.get(api_key, (0, -1))[1] < needed:
            return f"the broker does not take {name} v{needed} (KIP-447): exactly-once could not fence a paused worker"
    return None


# --- faust's consumer, its thread and its producer --------------------------------------------------


class CommittedReadsConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread, whose aiokafka consumer reads committed messages only, fetches
    stable offsets, and tells the membership it holds (``streams.runtime.faust_kafka``)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # the constructor's argument, read when it starts
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None and hasattr(coordinator, "_do_fetch_commit_offsets"):
            # Before faust subscribes: no committed offset has been fetched yet.
            async def stable(partitions: Any) -> dict[TopicPartition, OffsetAndMetadata]:
                return await fetch_stable_offsets(coordinator, partitions)

            coordinator._do_fetch_commit_offsets = stable

    def group_member(self) -> GroupMember | None:
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None or not hasattr(coordinator, "generation"):
            return None
        return GroupMember(
            group_id=coordinator.group_id,
            generation_id=coordinator.generation,
            member_id=coordinator.member_id or "",
            group_instance_id=coordinator._group_instance_id,
        )


class CommittedReadsConsumer(faust_aiokafka.Consumer):
    """faust's consumer over a ``CommittedReadsConsumerThread``."""

    def _new_consumer_thread(self) -> CommittedReadsConsumerThread:
        return CommittedReadsConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def group_member(self) -> GroupMember | None:
        """The member id and generation the group coordinator knows this consumer by, now (read
        from the consumer's thread: plain attributes, set there as the group changes)."""
        thread = getattr(self, "_thread", None)
        return thread.group_member() if isinstance(thread, CommittedReadsConsumerThread) else None


class WholeFetchConsumerThread(CommittedReadsConsumerThread):
    """Sends a partition with nothing committed to its start (``seek_to_committed_or_start``)."""

    async def seek_to_committed(self) -> Any:
        return await self.call_thread(seek_to_committed_or_start, self._ensure_consumer())


class WholeFetchConsumer(CommittedReadsConsumer):
    """The pipeline's consumer. faust's fetcher hands each message to a stream on its own (a
    callback and a ``wait_first`` per message); the pipeline's agents read whole fetches from the
    consumer instead (``streams.runtime.faust_sink.ConsumerBatches``), so the fetcher's drain is
    idle here."""

    async def _drain_messages(self, fetcher: Any) -> None:
        await asyncio.Event().wait()  # until the fetcher is cancelled

    def _new_consumer_thread(self) -> CommittedReadsConsumerThread:
        return WholeFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TableOffsetsConsumer(CommittedReadsConsumer):
    """faust's consumer with the steps of its offset bookkeeping that the table apps change
    (``streams.runtime.faust_tables.TableConsumer``) under names of their own."""

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """faust notes a gap in a partition's offsets (a transaction's commit marker) from the
        offset after the last message read up to the one read now, that one included (``_add_gap(tp,
        last + 1, offset)`` adds ``[from, to + 1)``). The message's own offset is then acknowledged
        twice, and ``_new_offset`` commits only the first run of consecutive offsets: a duplicate
        ends a run. So each commit would move past one transaction of the topic only: the statistics
        worker's committed offset would fall far behind what it counted, one of the pipeline's
        transactions per commit interval, and a restart would count most of them again (upstream:
        robinhood/faust#625, faust-streaming/faust#606). The gap noted here ends before the message."""
        await super()._add_gap(tp, offset_from, offset_to - 1)

    def _new_offset(self, tp: Any) -> int | None:
        return self.offset_to_commit(tp, functools.partial(super()._new_offset, tp))

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Any:
        return iter(set(super()._filter_tps_with_pending_acks(topics)) | self.partitions_to_commit(topics))

    def offset_to_commit(self, tp: Any, faust_offset: Callable[[], int | None]) -> int | None:
        """The next offset of ``tp`` to commit; ``faust_offset`` tells faust's own."""
        return faust_offset()

    def partitions_to_commit(self, topics: Any) -> set[Any]:
        """Partitions a commit looks at besides those with acknowledgements (faust's own)."""
        return set()

    def acknowledged_in_order(self, tp: Any) -> Sequence[int]:
        """The offsets of ``tp`` acknowledged since the last commit, in the order they were."""
        return self._acked.get(tp) or ()

    def acknowledged(self, tp: Any) -> set[int]:
        """The same offsets as a set, faust's own (what is taken from it is taken from faust's)."""
        return self._acked_index[tp]

    def last_committed(self, tp: Any) -> int | None:
        """The offset of ``tp`` last committed, as this consumer knows it (None: none known)."""
        return self._committed_offset[tp]


class CommittedReadsTransport(faust_aiokafka.Transport):
    Consumer = CommittedReadsConsumer


class WholeFetchTransport(CommittedReadsTransport):
    Consumer = WholeFetchConsumer


def use_committed_reads(app: Any, transport: type[CommittedReadsTransport] = CommittedReadsTransport) -> None:
    """Gives ``app`` a transport that reads committed messages only: the one above, or a subclass of
    it (the pipeline's ``WholeFetchTransport``, the table apps' ``TableTransport``); call it right
    after creating the app, before its topics."""
    app.transport = transport(app.conf.broker_consumer, app)


def offset_commit(app: faust.App) -> Callable[[Any], Awaitable[Any]]:
    """The driver's commit of given offsets (faust's public ``commit`` commits what its streams
    acknowledged, and no stream sees the messages the pipeline's agents read)."""
    consumer: Any = app.consumer  # faust types it as ConsumerT, which does not declare _commit
    commit: Callable[[Any], Awaitable[Any]] = consumer._commit
    return commit


def replace_offset_commit(app: faust.App, commit: Callable[[Any], Awaitable[Any]]) -> None:
    """Every commit of offsets the app makes goes to ``commit`` instead (faust's own periodic
    commit included)."""
    consumer: Any = app.consumer
    consumer._commit = commit


class HandoverCountingProducer(faust_aiokafka.Producer):
    """faust's producer, whose buffer counts the writes its sender has taken out of the queue and
    not yet handed to the client (``buffer.handing_over``, read by ``changelog_before_offsets``).
    The count wraps the buffer's sender on this instance, before the buffer starts (its sending task
    reads the method once, when it starts): a subclass of the buffer would lose that task, which
    mode collects from the class that declares it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        buffer: Any = self.buffer  # a ProducerBuffer: its sender is private, not in faust's types
        send_pending = buffer._send_pending
        buffer.handing_over = 0

        async def send_pending_counted(fut: Any) -> None:
            buffer.handing_over += 1
            try:
                await send_pending(fut)
            finally:
                buffer.handing_over -= 1

        buffer._send_pending = send_pending_counted


def table_recovery(app: faust.App) -> Any:
    """The app's table recovery (what it restores from the changelogs, and whether it has)."""
    return app.tables.recovery  # type: ignore[attr-defined]  # the TableManager has it, TableManagerT not
