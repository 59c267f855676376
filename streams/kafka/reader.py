"""Reading topics once, to an end: a range by offsets or timestamps (replay, data quality), or a
whole topic filtered by content (audit and provision-record lookups, the retention job).

Offsets are inclusive at both ends on the command line (``--from-offset 10 --to-offset 19`` is ten
records per partition); internally each partition has ``start`` (first offset) and ``end``
(exclusive). Times resolve with the broker's time index: the first offset at or after the time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.errors import ClusterError, ConfigError
from streams.kafka import clients


def reader(kafka: Mapping[str, Any], *, group_id: str) -> Consumer:
    """A consumer for assigned partitions: committed records only, an event at each partition's end,
    nothing committed (the group id is required by the client, never joined)."""
    return clients.reading_consumer(kafka, group_id, partition_eof=True)


def topic_partitions(consumer: Consumer, topic: str, timeout: float = 15) -> list[int]:
    try:
        metadata = clients.patiently(
            lambda: consumer.list_topics(topic, timeout=timeout), what=f"reading the metadata of {topic}"
        )
    except KafkaException as exc:
        raise ClusterError(f"cannot read the metadata of {topic}: {clients.failure(exc)}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise ClusterError(f"topic {topic} does not exist; run `jointuse topics create`")
    return sorted(found.partitions)


@dataclass(frozen=True)
class RangeSpec:
    topic: str
    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None  # inclusive
    from_time: dt.datetime | None = None
    to_time: dt.datetime | None = None  # exclusive
    key: str | None = None

    def __post_init__(self) -> None:
        if self.from_offset is not None and self.from_time is not None:
            raise ConfigError("give --from-offset or --from-time, not both")
        if self.to_offset is not None and self.to_time is not None:
            raise ConfigError("give --to-offset or --to-time, not both")
        for moment in (self.from_time, self.to_time):
            if moment is not None and moment.tzinfo is None:
                raise ConfigError("times must carry a UTC offset, e.g. 2026-06-01T00:00:00+09:00")
        if any(o is not None and o < 0 for o in (self.from_offset, self.to_offset)):
            raise ConfigError("offsets must be 0 or more")

    def canonical(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "from_offset": self.from_offset,
            "to_offset": self.to_offset,
            "from_time": self.from_time.isoformat() if self.from_time else None,
            "to_time": self.to_time.isoformat() if self.to_time else None,
            "key": self.key,
        }


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int
    end: int  # exclusive

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def _millis(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def resolve(consumer: Consumer, spec: RangeSpec, timeout: float = 15) -> list[PartitionRange]:
    """Per-partition offsets of ``spec`` as the topic stands now."""
    partitions = topic_partitions(consumer, spec.topic)
    if spec.partition is not None:
        if spec.partition not in partitions:
            raise ConfigError(f"{spec.topic} has no partition {spec.partition}")
        partitions = [spec.partition]
    try:
        return [
            clients.patiently(
                partial(_range_of, consumer, spec, partition, timeout),
                what=f"resolving the range of {spec.topic}",
            )
            for partition in partitions
        ]
    except KafkaException as exc:
        raise ClusterError(f"cannot resolve the range of {spec.topic}: {clients.failure(exc)}") from exc


def _range_of(consumer: Consumer, spec: RangeSpec, partition: int, timeout: float) -> PartitionRange:
    low, high = consumer.get_watermark_offsets(TopicPartition(spec.topic, partition), timeout, cached=False)
    start, end = low, high
    if spec.from_offset is not None:
        start = max(low, spec.from_offset)
    elif spec.from_time is not None:
        start = _offset_at(consumer, spec.topic, partition, _millis(spec.from_time), high, timeout)
    if spec.to_offset is not None:
        end = min(high, spec.to_offset + 1)
    elif spec.to_time is not None:
        end = _offset_at(consumer, spec.topic, partition, _millis(spec.to_time), high, timeout)
    return PartitionRange(partition, start, max(start, end))


def _offset_at(consumer: Consumer, topic: str, partition: int, millis: int, high: int, timeout: float) -> int:
    found = consumer.offsets_for_times([TopicPartition(topic, partition, millis)], timeout)[0]
    return high if found.offset < 0 else found.offset  # -1: no record at or after that time


def read_range(
    kafka: Mapping[str, Any],
    spec: RangeSpec,
    *,
    group_id: str,
    positions: Mapping[int, int] | None = None,
    batch_size: int = 500,
    on_progress: Callable[[int], None] = lambda done: None,
) -> Iterator[list[Message]]:
    """Batches of committed messages in the range. ``positions`` (partition → next offset) resumes
    a partition from a checkpoint instead of its start. Messages beyond the end are not returned."""
    consumer = reader(kafka, group_id=group_id)
    try:
        ranges = resolve(consumer, spec)
        yield from read_assigned(consumer, spec, ranges, positions or {}, batch_size, on_progress)
    finally:
        consumer.close()


def read_assigned(
    consumer: Consumer,
    spec: RangeSpec,
    ranges: list[PartitionRange],
    positions: Mapping[int, int],
    batch_size: int,
    on_progress: Callable[[int], None],
) -> Iterator[list[Message]]:
    ends = {r.partition: r.end for r in ranges}
    starts = {r.partition: max(r.start, positions.get(r.partition, r.start)) for r in ranges}
    pending = {p for p in ends if starts[p] < ends[p]}
    if not pending:
        return
    consumer.assign([TopicPartition(spec.topic, p, starts[p]) for p in sorted(pending)])
    key = spec.key.encode() if spec.key is not None else None
    done = 0
    patience_ends = time.monotonic() + clients.CLUSTER_PATIENCE_S
    while pending:
        batch = []
        for message in consumer.consume(batch_size, 1.0):
            error = message.error()
            partition = message.partition() or 0
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(partition)  # the end is below the high watermark (aborted records)
                    continue
                reconnects = clients.passing(error) or error.name() in clients.NO_BROKER
                if reconnects and time.monotonic() < patience_ends:
                    continue  # the client reconnects and follows the new leader by itself
                raise ClusterError(f"reading {spec.topic} failed ({clients.failure(KafkaException(error))})")
            patience_ends = time.monotonic() + clients.CLUSTER_PATIENCE_S
            if partition not in pending:
                continue
            offset = message.offset() or 0
            if offset >= ends[partition]:
                pending.discard(partition)
                continue
            done += 1
            if offset + 1 >= ends[partition]:
                pending.discard(partition)
            if key is None or message.key() == key:
                batch.append(message)
        if batch:
            yield batch
        on_progress(done)


def scan_topic(
    kafka: Mapping[str, Any],
    topic: str,
    *,
    group_id: str,
    contains: Sequence[bytes] = (),
    on_progress: Callable[[int], None] = lambda seen: None,
) -> Iterator[Message]:
    """Committed messages of the whole of ``topic``, up to its end when the scan started. With
    ``contains``, only values holding one of those byte strings (a cheap filter before any JSON parsing)."""
    for batch in read_range(kafka, RangeSpec(topic), group_id=group_id, batch_size=1000, on_progress=on_progress):
        for message in batch:
            if not contains or any(needle in (message.value() or b"") for needle in contains):
                yield message
