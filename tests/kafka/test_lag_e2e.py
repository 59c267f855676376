"""How far behind a group is: records not committed, and the age of the first of them."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.kafka.admin import create_topics
from streams.kafka.lag import group_lag
from streams.settings import Settings
from streams.topology import TopicSpec

pytestmark = pytest.mark.kafka


def test_the_oldest_unprocessed_record_is_aged_by_its_timestamp(kafka: Settings, unique: str) -> None:
    topic = f"lag{unique}"
    create_topics(kafka.kafka_common(), [TopicSpec(topic)], partitions=2, replication=1)
    producer = Producer(kafka.kafka_common())
    an_hour_ago_ms = int((time.time() - 3600) * 1000)
    for n in range(4):  # partition 0: two records, an hour old then new; partition 1: nothing
        producer.produce(topic, b"x", partition=0, timestamp=an_hour_ago_ms + n * 1000 if n < 2 else 0)
    assert producer.flush(30) == 0
    group = f"g{unique}"

    (waiting, empty) = sorted(group_lag(kafka, group, [topic], ages=True), key=lambda p: p.partition)
    assert (waiting.lag, empty.lag) == (4, 0)
    assert waiting.oldest_age_seconds is not None and 3590 < waiting.oldest_age_seconds < 3700
    assert empty.oldest_age_seconds == 0.0
    assert group_lag(kafka, group, [topic])[0].oldest_age_seconds is None  # only measured when asked

    consumer = Consumer({**kafka.kafka_common(), "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)  # the first one is done
    consumer.close()
    waiting = next(p for p in group_lag(kafka, group, [topic], ages=True) if p.partition == 0)
    assert waiting.lag == 3
    assert waiting.oldest_age_seconds is not None and 3580 < waiting.oldest_age_seconds < 3700 - 1
