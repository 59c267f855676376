"""Reads a topic from its beginning to its current end, once (audit and provision-record lookups)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.errors import KafkaError as JointUseKafkaError


def topic_partitions(consumer: Consumer, topic: str, timeout: float = 15) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise JointUseKafkaError(f"cannot read the metadata of {topic} ({exc.args[0]})") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise JointUseKafkaError(f"topic {topic} does not exist; run `jointuse topics create`")
    return sorted(found.partitions)


def scan_topic(
    kafka: dict[str, Any],
    topic: str,
    *,
    group_id: str,
    contains: Sequence[bytes] = (),
    timeout: float = 120,
    on_progress: Callable[[int], None] = lambda seen: None,
) -> Iterator[Message]:
    """Committed messages of ``topic`` up to its end when the scan started. With ``contains``, only
    values holding one of those byte strings (a cheap filter before any JSON parsing)."""
    consumer = Consumer(
        {
            **kafka,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 16_777_216,
        }
    )
    try:
        partitions = topic_partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        deadline = time.monotonic() + timeout
        seen = 0
        while pending:
            if time.monotonic() > deadline:
                raise JointUseKafkaError(f"reading {topic} to its end took longer than {timeout:.0f} s")
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition() or 0)
                        continue
                    raise JointUseKafkaError(f"reading {topic} failed ({error})")
                seen += 1
                value = message.value() or b""
                if not contains or any(needle in value for needle in contains):
                    yield message
            on_progress(seen)
    finally:
        consumer.close()
