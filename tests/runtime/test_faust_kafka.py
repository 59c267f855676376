"""The faust runtime's fencing pieces against the real broker (streams/runtime/faust_kafka.py, and
the producer and offset fetch of streams/runtime/faust_internals.py): the group coordinator refuses
a transaction's offsets sent with a stale generation or an unknown member, and a consumer's stable
offset fetch waits while another member's transaction holds offsets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaConnectionError, ProducerFenced
from aiokafka.structs import TopicPartition

from streams.kafka.admin import create_topics
from streams.messages import OutMessage
from streams.runtime.faust_internals import GroupFencedProducer, fencing_unsupported, fetch_stable_offsets
from streams.runtime.faust_kafka import (
    FencingUnsupported,
    GroupMember,
    GroupRefusedOffsets,
    NotAGroupMember,
    UnstableOffsets,
    seek_to_committed_or_start,
)
from streams.runtime.faust_sink import AiokafkaSink
from streams.runtime.transaction import ErrorKind
from streams.settings import Settings
from streams.topology import TopicSpec


def _topic(settings: Settings, unique: str) -> str:
    name = f"fence{unique}.in"
    create_topics(settings.kafka_common(), [TopicSpec(name, config={})], partitions=1, replication=1)
    return name


async def _member(settings: Settings, topic: str, group: str) -> tuple[AIOKafkaConsumer, GroupMember]:
    consumer = AIOKafkaConsumer(topic, group_id=group, enable_auto_commit=False, **settings.aiokafka_conf())
    await consumer.start()
    for _ in range(100):  # until the group has given it the partition
        if consumer.assignment():
            break
        await consumer.getmany(timeout_ms=100)
    coordinator: Any = consumer._coordinator
    return consumer, GroupMember(group, coordinator.generation, coordinator.member_id, None)


async def _stable_offsets(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, Any]:
    """The committed offsets once the transaction's markers are written: the coordinator writes them
    after its commit or abort has returned, and answers "unstable" until then."""
    for _ in range(200):
        try:
            return await fetch_stable_offsets(consumer._coordinator, partitions)
        except UnstableOffsets:
            await asyncio.sleep(0.05)
    raise AssertionError("the offsets stayed unstable")


async def _stable(consumer: AIOKafkaConsumer, partition: TopicPartition) -> int:
    return int((await _stable_offsets(consumer, [partition]))[partition].offset)


def _producer(settings: Settings, unique: str) -> GroupFencedProducer:
    return GroupFencedProducer(
        **settings.aiokafka_conf(),
        transactional_id=f"fence{unique}",
        enable_idempotence=True,
        transaction_timeout_ms=30_000,
    )


@pytest.mark.kafka
def test_reading_again_from_the_committed_offsets_starts_an_uncommitted_partition_at_its_start(
    kafka: Settings, unique: str
) -> None:
    """Records read and then dropped (a fetch across a rebalance) are read again: from the committed
    offset, and from the start where nothing is committed yet. aiokafka's own ``seek_to_committed``
    left the second where it was, past them."""
    name = f"seek{unique}.in"
    create_topics(kafka.kafka_common(), [TopicSpec(name, config={})], partitions=2, replication=1)

    async def run() -> tuple[int, int]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**kafka.aiokafka_conf())
        await producer.start()
        try:
            for partition in (0, 1):
                for n in range(5):
                    await producer.send_and_wait(name, f"{n}".encode(), partition=partition)
        finally:
            await producer.stop()
        consumer, _ = await _member(kafka, name, f"seek{unique}")
        try:
            committed, uncommitted = TopicPartition(name, 0), TopicPartition(name, 1)
            await consumer.commit({committed: 2})
            for _ in range(100):  # read to the end of both (then dropped)
                await consumer.getmany(timeout_ms=100)
                if await consumer.position(committed) == 5 and await consumer.position(uncommitted) == 5:
                    break
            await seek_to_committed_or_start(consumer)
            return await consumer.position(committed), await consumer.position(uncommitted)
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == (2, 0)


@pytest.mark.kafka
def test_a_transaction_whose_outputs_were_not_all_written_is_aborted_not_committed(
    kafka: Settings, unique: str
) -> None:
    """aiokafka fails a record batch the broker refuses for good (here: too large for its topic) and
    still commits the transaction, offsets included: the batch's inputs would count as done while
    that output was never written. The sink checks every send before the commit and aborts."""
    source = _topic(kafka, unique)
    small = f"fence{unique}.small"
    create_topics(
        kafka.kafka_common(), [TopicSpec(small, config={"max.message.bytes": "2000"})], partitions=1, replication=1
    )
    written = f"fence{unique}.written"
    create_topics(kafka.kafka_common(), [TopicSpec(written, config={})], partitions=1, replication=1)
    group = f"fence{unique}.group"

    async def run() -> None:
        consumer, member = await _member(kafka, source, group)
        sink = AiokafkaSink(kafka=kafka.aiokafka_conf(), transactional_id=f"sink{unique}", group_id=group)
        try:
            await sink.begin()
            await sink.write([OutMessage(written, b"k", b"fits", []), OutMessage(small, b"k", b"x" * 5000, [])])
            await sink.send_offsets({(source, 0): 1}, member)
            with pytest.raises(Exception) as raised:
                await sink.commit()
            assert sink.classify(raised.value) is ErrorKind.ABORTABLE
            await sink.abort()
            assert (await _stable_offsets(consumer, [TopicPartition(source, 0)])) == {}  # after the abort's markers
        finally:
            await sink.stop()
            await consumer.stop()
        assert await _committed_values(kafka, written) == []  # aborted at the broker too

    asyncio.run(run())


@pytest.mark.kafka
def test_offsets_of_a_stale_generation_or_an_unknown_member_are_refused(kafka: Settings, unique: str) -> None:
    topic = _topic(kafka, unique)
    group = f"fence{unique}.group"

    async def run() -> None:
        consumer, member = await _member(kafka, topic, group)
        producer = _producer(kafka, unique)
        await producer.start()
        try:
            assert await fencing_unsupported(producer.client) is None
            offsets = {TopicPartition(topic, 0): 1}
            for stale in (member._replace(generation_id=member.generation_id + 1), member._replace(member_id="gone")):
                await producer.begin_transaction()
                await producer.send(topic, b"from a zombie")
                with pytest.raises(GroupRefusedOffsets):
                    await producer.send_offsets_to_transaction(offsets, stale)
                await producer.abort_transaction()
            await producer.begin_transaction()
            with pytest.raises(NotAGroupMember):  # no generation: the broker would not check it at all
                await producer.send_offsets_to_transaction(offsets, member._replace(generation_id=-1, member_id=""))
            await producer.abort_transaction()
            await producer.begin_transaction()
            await producer.send(topic, b"from the owner")
            await producer.send_offsets_to_transaction(offsets, member)  # the current member: accepted
            await producer.commit_transaction()
            assert (await _stable(consumer, TopicPartition(topic, 0))) == 1
        finally:
            await producer.stop()
            await consumer.stop()
        # The refused transactions were aborted at the broker, not only in the client: aiokafka's
        # would end them without an EndTxn, and the next commit would publish what they wrote.
        assert await _committed_values(kafka, topic) == [b"from the owner"]

    asyncio.run(run())


async def _committed_values(settings: Settings, topic: str) -> list[bytes]:
    reader = AIOKafkaConsumer(
        topic, isolation_level="read_committed", auto_offset_reset="earliest", **settings.aiokafka_conf()
    )
    await reader.start()
    try:
        values: list[bytes] = []
        for _ in range(20):  # until the end of the partition (a few fetches)
            fetched = await reader.getmany(timeout_ms=250)
            values += [record.value for records in fetched.values() for record in records]
            if values and not fetched:
                break
        return values
    finally:
        await reader.stop()


@pytest.mark.kafka
def test_a_stable_offset_fetch_waits_for_the_open_transaction(kafka: Settings, unique: str) -> None:
    topic = _topic(kafka, unique)
    group = f"stable{unique}.group"

    async def run() -> None:
        consumer, member = await _member(kafka, topic, group)
        producer = _producer(kafka, unique)
        await producer.start()
        partition = TopicPartition(topic, 0)
        try:
            await producer.begin_transaction()
            await producer.send(topic, b"x")
            await producer.send_offsets_to_transaction({partition: 7}, member)  # pending until the commit
            coordinator: Any = consumer._coordinator
            with pytest.raises(UnstableOffsets):
                await fetch_stable_offsets(coordinator, [partition])
            await producer.commit_transaction()
            assert await _stable(consumer, partition) == 7
        finally:
            await producer.stop()
            await consumer.stop()

    asyncio.run(run())


class _Client:
    def __init__(self, versions: dict[int, tuple[int, int]] | None) -> None:
        self.versions = versions

    def get_random_node(self) -> int:
        return 1

    async def _get_conn(self, node_id: int) -> Any:
        return None if self.versions is None else type("Connection", (), {"_versions": self.versions})()


def test_a_broker_that_cannot_fence_is_named_and_one_that_is_away_is_not_judged() -> None:
    assert asyncio.run(fencing_unsupported(_Client({28: (0, 5), 9: (1, 10)}))) is None
    old = asyncio.run(fencing_unsupported(_Client({28: (0, 2), 9: (1, 10)})))
    assert old is not None and "TxnOffsetCommit v3" in old
    assert "OffsetFetch v7" in str(asyncio.run(fencing_unsupported(_Client({28: (0, 5), 9: (1, 6)}))))
    with pytest.raises(KafkaConnectionError):  # retriable: the broker may come back
        asyncio.run(fencing_unsupported(_Client(None)))


def test_offsets_are_never_sent_without_a_generation() -> None:
    """The broker checks nothing for generation -1, so such offsets would fence nobody."""

    async def run() -> None:
        producer = GroupFencedProducer(bootstrap_servers="127.0.0.1:1", transactional_id="t", enable_idempotence=True)
        for member in (GroupMember("g", -1, "m", None), GroupMember("g", 3, "", None)):
            with pytest.raises(NotAGroupMember):
                await producer.send_offsets_to_transaction({TopicPartition("t", 0): 1}, member)
        with pytest.raises(TypeError):
            await producer.send_offsets_to_transaction({TopicPartition("t", 0): 1}, "g")

    asyncio.run(run())


def test_the_sink_drops_a_batch_the_group_refused_and_renews_a_fenced_producer() -> None:
    """A refused batch is not written again (the loop's GROUP_CHANGED); a plain failed commit of the
    consumer (at least once) is not a refusal of this kind."""
    sink = asyncio.run(_sink())
    assert sink.classify(GroupRefusedOffsets("ILLEGAL_GENERATION")) is ErrorKind.GROUP_CHANGED
    assert sink.classify(NotAGroupMember()) is ErrorKind.GROUP_CHANGED
    assert sink.classify(CommitFailedError("rebalanced")) is ErrorKind.ABORTABLE
    assert sink.classify(ProducerFenced()) is ErrorKind.RENEW
    assert sink.classify(KafkaConnectionError()) is ErrorKind.RETRIABLE
    assert sink.classify(FencingUnsupported("old broker")) is ErrorKind.FATAL


def test_a_batch_read_without_a_generation_is_refused_before_anything_is_sent() -> None:
    async def run() -> None:
        with pytest.raises(NotAGroupMember):
            await (await _sink()).send_offsets({("t", 0): 1}, None)

    asyncio.run(run())


def test_a_sink_closes_its_producer_when_it_stops_even_one_never_started() -> None:
    """A worker's erasure route often has no traffic: its producer never starts, and aiokafka logs
    "Unclosed AIOKafkaProducer" as an error at each exit if the sink leaves it so. Same after a
    renewal, whose new producer starts only with the next batch."""

    async def run() -> None:
        idle = await _sink()
        await idle.stop()
        renewed = await _sink()
        replaced = renewed.producer
        await renewed.renew()
        await renewed.stop()
        unclosed = [p for p in (idle.producer, replaced, renewed.producer) if not p._closed]
        assert unclosed == [], "a producer was left unclosed"

    asyncio.run(run())


async def _sink() -> AiokafkaSink:  # aiokafka makes its producer on a running loop; nothing connects
    return AiokafkaSink(kafka={"bootstrap_servers": "127.0.0.1:1"}, transactional_id="t", group_id="g")
