"""Producing one message with confluent-kafka when the local queue may be full."""

from __future__ import annotations

from confluent_kafka import KafkaException, Producer

from streams.errors import KafkaError
from streams.streaming.processor import Headers, OutMessage


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
