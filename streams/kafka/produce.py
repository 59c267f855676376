"""Producing one message with confluent-kafka when the local queue may be full."""

from __future__ import annotations

from confluent_kafka import KafkaException, Producer

from streams.errors import KafkaError
from streams.messages import Headers, OutMessage

# Keys go to the partition Java clients and aiokafka (faust) choose: murmur2. librdkafka's default
# (CRC32) would put a tombstone in another partition than the delivery it must erase.
SAME_PARTITIONS_AS_JAVA = {"partitioner": "murmur2_random"}


def produce_waiting(producer: Producer, message: OutMessage) -> None:
    """Produces ``message``; while librdkafka's local queue is full, serves delivery reports instead."""
    while True:
        try:
            producer.produce(message.topic, key=message.key, value=message.value, headers=message.headers)
            return
        except BufferError:
            producer.poll(0.05)
        except KafkaException as exc:
            raise KafkaError(f"cannot produce to {message.topic} ({exc.args[0]})") from exc


def out(topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None) -> OutMessage:
    return OutMessage(topic, key, value, headers or [])
