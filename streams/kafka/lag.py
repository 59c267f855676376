"""Consumer lag per partition: the high watermark minus the group's committed offset.

Read with a confluent-kafka consumer that never subscribes, so it works for any group (the faust
worker's, the confluent runner's, a company's own) without joining it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.errors import ClusterError
from streams.kafka import clients
from streams.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    low: int
    high: int
    oldest_age_seconds: float | None = None  # of the first unprocessed record; None when not measured

    @property
    def lag(self) -> int:
        start = self.committed if self.committed is not None and self.committed >= 0 else self.low
        return max(0, self.high - start)


def group_lag(
    settings: Settings, group_id: str, topics: Iterable[str], timeout: float = 10, *, ages: bool = False
) -> list[PartitionLag]:
    """The lag of ``group_id`` on every partition of ``topics``; with ``ages``, also how old the
    first unprocessed record of each lagging partition is (0 where nothing waits)."""
    consumer = clients.reading_consumer(settings.kafka_common(), group_id)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in _partitions(consumer, t, timeout)]
        committed = consumer.committed(partitions, timeout=timeout) if partitions else []
        out = []
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
            out.append(PartitionLag(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else None, low, high))
        return _with_ages(consumer, out, timeout) if ages else out
    except KafkaException as exc:
        raise ClusterError(f"cannot read offsets of group {group_id}: {clients.failure(exc)}") from exc
    finally:
        consumer.close()


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    """The topic's partitions (none if it does not exist), from its own metadata: a worker asks for
    its lag every 10 s, and the whole cluster's metadata is a Python object per partition of every
    topic (the event loop's interpreter lock held meanwhile; 2 % of a busy worker's time)."""
    found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    return [] if found is None or found.error is not None else sorted(found.partitions)


def _with_ages(consumer: Consumer, lags: list[PartitionLag], timeout: float) -> list[PartitionLag]:
    """Reads the first unprocessed record of each lagging partition (committed ones only, as the
    worker reads them) for its timestamp. Where none arrives in time the age stays unknown."""
    waiting = {(p.topic, p.partition): p for p in lags if p.lag > 0}
    ages: dict[tuple[str, int], float] = {}
    if waiting:
        consumer.assign(
            [TopicPartition(t, n, p.committed if p.committed is not None else p.low) for (t, n), p in waiting.items()]
        )
        deadline = time.monotonic() + min(timeout, 5.0)
        while len(ages) < len(waiting) and time.monotonic() < deadline:
            for message in consumer.consume(len(waiting), 0.5):
                where = (message.topic() or "", message.partition() or 0)
                _, stamp = message.timestamp()
                if message.error() is None and where in waiting and where not in ages and stamp > 0:
                    ages[where] = max(0.0, time.time() - stamp / 1000)
        consumer.unassign()
    return [replace(p, oldest_age_seconds=0.0 if p.lag == 0 else ages.get((p.topic, p.partition))) for p in lags]


@dataclass(frozen=True)
class TopicOffsets:
    topic: str
    partition: int
    low: int
    high: int


def topic_offsets(settings: Settings, *, prefix: str = "", timeout: float = 10) -> list[TopicOffsets]:
    """Low and high watermarks of every partition of the topics whose names start with ``prefix``."""
    consumer = clients.reading_consumer(settings.kafka_common(), f"jointuse-describe-{uuid.uuid4().hex[:8]}")
    try:
        metadata = consumer.list_topics(timeout=timeout)
        rows = []
        for name in sorted(t for t in metadata.topics if t.startswith(prefix)):
            for partition in sorted(metadata.topics[name].partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=timeout)
                rows.append(TopicOffsets(name, partition, low, high))
        return rows
    except KafkaException as exc:
        raise ClusterError(f"cannot read topic offsets: {clients.failure(exc)}") from exc
    finally:
        consumer.close()


class LagMonitor(threading.Thread):
    """Calls ``report`` with the lag of ``group_id`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        topics: list[str],
        report: Callable[[list[PartitionLag]], None],
        interval: float = 10.0,
    ) -> None:
        super().__init__(name="lag-monitor", daemon=True)
        self.settings, self.group_id, self.topics, self.report, self.interval = (
            settings,
            group_id,
            topics,
            report,
            interval,
        )
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.report(group_lag(self.settings, self.group_id, self.topics, ages=True))
            except ClusterError:
                continue  # the broker is away; readiness reports it, the next round retries
