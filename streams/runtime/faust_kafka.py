"""faust's aiokafka transport with the two things exactly-once needs that faust (outside its own
exactly-once mode) and aiokafka 0.14 leave out:

- **committed input only**: the group consumer reads ``read_committed``, so a record of a
  producer's aborted transaction is never decided, and it fetches its committed offsets with
  ``require_stable`` (OffsetFetch v7, KIP-447): while another member's transaction holds offsets
  for a partition that are not yet committed or aborted, the broker answers
  ``UNSTABLE_OFFSET_COMMIT`` and this member waits, instead of starting from the older offset and
  doing that transaction's inputs a second time when it commits;
- **zombie fencing by the group's generation** (KIP-447): ``GroupFencedProducer`` sends a batch's
  offsets with TxnOffsetCommit v3, which carries the member id and generation the consumer holds.
  A worker frozen past its session timeout (GC pause, frozen VM, partition) still thinks it owns
  its partitions when it wakes; the group coordinator refuses its offsets (``ILLEGAL_GENERATION``,
  ``UNKNOWN_MEMBER_ID``), the transaction is aborted, and nothing of it becomes visible. aiokafka
  sends TxnOffsetCommit v0, which the broker cannot check against the group;
- **an abort after an error that reaches the broker** (``BrokerAbortedTransactions``): aiokafka's
  transaction manager forgets, on any abortable error, which partitions and group the broker
  already holds in the transaction, so the abort that follows ends it in the client alone, with no
  EndTxn. The broker keeps the transaction open, and the producer's next commit publishes what the
  "aborted" one wrote (the outage test found it: two refused batches, 200 inputs audited twice).

Why this and not one transactional producer per input partition (the pre-KIP-447 model faust's
own exactly-once mode uses): it keeps one transaction per batch, where per-partition producers
split every batch into one transaction per input partition it touches, each with its own commit
round trip (docs/architecture.md, "Fencing", has the measurement).

Both replace private parts of aiokafka and faust (the producer's sender, the consumer's offset
fetch, faust's consumer thread); tests/runtime/test_faust_pin.py pins the versions they were
checked against. They are installed per app (``use_committed_reads``), not on the classes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, NamedTuple, TypeAlias

import aiokafka.errors as errors
from aiokafka import AIOKafkaProducer
from aiokafka.client import CoordinationType
from aiokafka.producer.sender import Sender, TxnOffsetCommitHandler
from aiokafka.producer.transaction_manager import TransactionManager, TransactionState
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int16, Int32, Int64, Schema, TaggedFields
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("jointuse.worker")

NO_GENERATION = -1  # aiokafka's generation before a member joins and after it was reset
UNSTABLE_OFFSET_COMMIT = 88  # not in aiokafka's error table
PRODUCER_FENCED = 90  # idem (Kafka 2.7+ answers it where older brokers answered INVALID_PRODUCER_EPOCH)
FENCED_INSTANCE_ID = 82
# The group coordinator's word that this member's view of the group is stale: the offsets are
# refused and the transaction must be aborted (Java's producer: CommitFailedException).
NOT_THE_GROUP_S_MEMBER = {
    errors.IllegalGenerationError.errno,
    errors.UnknownMemberIdError.errno,
    errors.RebalanceInProgressError.errno,
    FENCED_INSTANCE_ID,
}


class GroupMember(NamedTuple):
    """What the group coordinator checks a transactional offset commit against."""

    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None


class GroupRefusedOffsets(errors.CommitFailedError):  # type: ignore[misc]  # aiokafka has no type information
    """The group coordinator refused a transaction's offsets: the group has moved past the membership
    they were sent with (a rebalance, or a session that expired while the worker was paused)."""


class NotAGroupMember(GroupRefusedOffsets):
    """The consumer holds no generation (it left, or its session expired): offsets sent now would not
    be checked against the group at all (the broker skips the check for generation -1), so none are."""


class FencingUnsupported(Exception):
    """The broker cannot check transactional offsets against the group: exactly-once is refused."""


class UnstableOffsets(errors.KafkaError):  # type: ignore[misc]  # aiokafka has no type information
    """Another member's open transaction holds offsets of these partitions: wait until it ends."""

    retriable = True


# --- TxnOffsetCommit v3 (KIP-447: the member's generation and id) --------------------------------


class TxnOffsetCommitResponse_v3(Response):  # type: ignore[misc]  # aiokafka has no type information
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("partitions", CompactArray(("partition_index", Int32), ("error_code", Int16), ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequest_v3(RequestStruct):  # type: ignore[misc]  # aiokafka has no type information
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("committed_offset", Int64),
                        ("committed_leader_epoch", Int32),
                        ("committed_metadata", CompactString("utf-8")),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


TxnOffsetCommitV3: TypeAlias = TxnOffsetCommitRequest_v3


class GroupTxnOffsetCommitRequest(Request[TxnOffsetCommitV3]):  # type: ignore[misc]  # aiokafka has no type information
    """Only v3 and later carry the member: a broker without it cannot fence (the worker refuses
    exactly-once then, rather than commit unfenced)."""

    API_KEY = 28

    def __init__(
        self,
        *,
        transactional_id: str,
        member: GroupMember,
        producer_id: int,
        producer_epoch: int,
        topics: list[tuple[str, list[tuple[int, int, str]]]],
    ) -> None:
        self._transactional_id = transactional_id
        self._member = member
        self._producer_id = producer_id
        self._producer_epoch = producer_epoch
        self._topics = topics

    def build(self, request_struct_class: type[TxnOffsetCommitV3]) -> TxnOffsetCommitV3:
        member = self._member
        topics: list[tuple[str, list[tuple[int, int, int, str, dict[int, bytes]]], dict[int, bytes]]] = [
            (topic, [(partition, offset, -1, metadata, {}) for partition, offset, metadata in partitions], {})
            for topic, partitions in self._topics
        ]
        return request_struct_class(
            self._transactional_id,
            member.group_id,
            self._producer_id,
            self._producer_epoch,
            member.generation_id,
            member.member_id,
            member.group_instance_id,
            topics,
            {},
        )


class GroupFencedTxnOffsetCommitHandler(TxnOffsetCommitHandler):  # type: ignore[misc]
    """aiokafka's handler with the member in the request, and the group's refusal an abortable error
    (aiokafka's own raises it out of the sender task, which ends the producer)."""

    def __init__(self, sender: Sender, offsets: dict[TopicPartition, OffsetAndMetadata], member: GroupMember) -> None:
        super().__init__(sender, offsets, member.group_id)
        self._member = member

    def create_request(self) -> GroupTxnOffsetCommitRequest:
        txn_manager = self._sender._txn_manager
        by_topic: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
        for tp, offset in sorted(self._offsets.items()):
            by_topic[tp.topic].append((tp.partition, offset.offset, offset.metadata))
        return GroupTxnOffsetCommitRequest(
            transactional_id=txn_manager.transactional_id,
            member=self._member,
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
        plain: Any = self.__dict__["_sender"]
        aborting = BrokerAbortedTransactions(
            plain._txn_manager.transactional_id, plain._txn_manager.transaction_timeout_ms
        )
        # The one transaction manager of the producer, its accumulator and its sender.
        self._txn_manager = aborting
        self._message_accumulator._txn_manager = aborting
        self._sender: GroupFencedSender = GroupFencedSender(
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
        waiter = self._txn_manager._transaction_waiter
        if waiter.done() and not waiter.cancelled():
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


# --- OffsetFetch v7 with require_stable (KIP-447) -------------------------------------------------


class OffsetFetchResponse_v7(Response):  # type: ignore[misc]  # aiokafka has no type information
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("committed_offset", Int64),
                        ("committed_leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequest_v7(RequestStruct):  # type: ignore[misc]  # aiokafka has no type information
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")), ("partition_indexes", CompactArray(Int32)), ("tags", TaggedFields)
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class StableOffsetFetchRequest(Request[OffsetFetchRequest_v7]):  # type: ignore[misc]  # aiokafka has no type information
    API_KEY = 9

    def __init__(self, group_id: str, partitions: list[tuple[str, list[int]]]) -> None:
        self._group_id = group_id
        self._partitions = partitions

    def build(self, request_struct_class: type[OffsetFetchRequest_v7]) -> OffsetFetchRequest_v7:
        topics: list[tuple[str, list[int], dict[int, bytes]]] = [(t, indexes, {}) for t, indexes in self._partitions]
        return request_struct_class(self._group_id, topics, True, {})


async def fetch_stable_offsets(coordinator: Any, partitions: Any) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets of ``partitions``, once no open transaction holds newer ones.
    Replaces aiokafka's ``GroupCoordinator._do_fetch_commit_offsets`` (same errors, same result);
    its caller retries retriable errors after its backoff."""
    by_topic: dict[str, list[int]] = collections.defaultdict(list)
    for tp in partitions:
        by_topic[tp.topic].append(tp.partition)
    response = await coordinator._send_req(StableOffsetFetchRequest(coordinator.group_id, list(by_topic.items())))
    _raise_for(coordinator, response.error_code)
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for topic, topic_partitions, _ in response.topics:
        for partition, offset, _epoch, metadata, error_code, _ in topic_partitions:
            if error_code == errors.UnknownTopicOrPartitionError.errno:
                continue
            _raise_for(coordinator, error_code)
            if offset >= 0:  # -1: nothing committed for this partition
                offsets[TopicPartition(topic, partition)] = OffsetAndMetadata(offset, metadata or "")
    return offsets


def _raise_for(coordinator: Any, error_code: int) -> None:
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


# --- faust: the consumer thread, consumer and transport that use them ----------------------------


class CommittedReadsConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
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
    def _new_consumer_thread(self) -> CommittedReadsConsumerThread:
        return CommittedReadsConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def group_member(self) -> GroupMember | None:
        """The member id and generation the group coordinator knows this consumer by, now (read
        from the consumer's thread: plain attributes, set there as the group changes)."""
        thread = getattr(self, "_thread", None)
        return thread.group_member() if isinstance(thread, CommittedReadsConsumerThread) else None


async def seek_to_committed_or_start(consumer: Any) -> dict[TopicPartition, int | None]:
    """Every assigned partition of an aiokafka ``consumer`` back to its committed offset, or to its
    start where nothing is committed: where a new assignment starts it (the pipeline reads from the
    earliest offset). aiokafka's ``seek_to_committed`` leaves a partition with no committed offset
    where it is: past the records just read, so that dropping them after the seek (a fetch across a
    rebalance, ``ConsumerBatches``) would lose them. Returns the committed offsets."""
    committed: dict[TopicPartition, int | None] = await consumer.seek_to_committed()
    # aiokafka seeks only to a committed offset above 0; 0 is the start too
    not_committed = [tp for tp, offset in committed.items() if not offset]
    if not_committed:
        await consumer.seek_to_beginning(*not_committed)
    return committed


class WholeFetchConsumerThread(CommittedReadsConsumerThread):
    async def seek_to_committed(self) -> Any:
        return await self.call_thread(seek_to_committed_or_start, self._ensure_consumer())


class WholeFetchConsumer(CommittedReadsConsumer):
    """The pipeline's consumer. faust's fetcher hands each message to a stream on its own (a
    callback and a ``wait_first`` per message); the pipeline's agents read whole fetches from the
    consumer instead (``streams.runtime.faust_sink.ConsumerBatches``), so the fetcher's drain is
    idle here. It replaces a private method of faust's consumer, in this subclass only:
    tests/runtime/test_faust_pin.py checks faust's own."""

    async def _drain_messages(self, fetcher: Any) -> None:
        await asyncio.Event().wait()  # until the fetcher is cancelled

    def _new_consumer_thread(self) -> CommittedReadsConsumerThread:
        return WholeFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class CommittedReadsTransport(faust_aiokafka.Transport):
    Consumer = CommittedReadsConsumer


class WholeFetchTransport(CommittedReadsTransport):
    Consumer = WholeFetchConsumer


def use_committed_reads(app: Any, transport: type[CommittedReadsTransport] = CommittedReadsTransport) -> None:
    """Gives ``app`` a transport that reads committed messages only: the one above, or a subclass of
    it (the pipeline's ``WholeFetchTransport``, the table apps' ``TableTransport``); call it right
    after creating the app, before its topics."""
    app.transport = transport(app.conf.broker_consumer, app)


TXN_OFFSET_COMMIT, OFFSET_FETCH = 28, 9


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
