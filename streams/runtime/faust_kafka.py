"""What exactly-once needs of faust's aiokafka transport that faust (outside its own exactly-once
mode) and aiokafka 0.14 leave out:

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

Here are the protocol messages aiokafka 0.14 lacks (TxnOffsetCommit v3, OffsetFetch v7 with
``require_stable``), the errors they answer and the membership a batch is read under. The producer,
consumer and transport that use them replace private parts of aiokafka and faust, and are in
``streams.runtime.faust_internals`` with every other such part; they are installed per app
(``use_committed_reads``), not on the classes.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

import aiokafka.errors as errors
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Boolean, CompactArray, CompactString, Int16, Int32, Int64, Schema, TaggedFields
from aiokafka.structs import TopicPartition

TXN_OFFSET_COMMIT, OFFSET_FETCH = 28, 9  # the API keys whose versions fencing needs
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
