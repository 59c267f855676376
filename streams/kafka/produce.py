"""Producing one message with confluent-kafka when the local queue may be full."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer

from streams.errors import ClusterError
from streams.kafka import clients
from streams.messages import Headers, OutMessage

QUEUE_FULL_SECONDS = 60.0


def produce_waiting(
    producer: Producer, message: OutMessage, *, on_delivery: Callable[[Any, Any], None] | None = None
) -> None:
    """Produces ``message``; while librdkafka's local queue is full, serves delivery reports instead,
    for at most ``QUEUE_FULL_SECONDS`` (then the broker is not taking anything: ``ClusterError``)."""
    deadline = time.monotonic() + QUEUE_FULL_SECONDS
    while True:
        try:
            # -1: librdkafka's "unassigned", its partitioner decides (murmur2_random, as configured).
            partition = -1 if message.partition is None else message.partition
            if on_delivery is None:
                producer.produce(
                    message.topic, key=message.key, value=message.value, headers=message.headers, partition=partition
                )
            else:
                producer.produce(
                    message.topic,
                    key=message.key,
                    value=message.value,
                    headers=message.headers,
                    partition=partition,
                    on_delivery=on_delivery,
                )
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise ClusterError(f"the local queue stayed full for {QUEUE_FULL_SECONDS:.0f} s") from None
            producer.poll(0.05)
        except KafkaException as exc:
            raise ClusterError(f"cannot produce to {message.topic}: {clients.failure(exc)}") from exc


def out(topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None) -> OutMessage:
    return OutMessage(topic, key, value, headers or [])


def write_in_transaction(
    kafka: dict[str, Any], transactional_id: str, messages: list[OutMessage], *, what: str
) -> None:
    """All of ``messages`` or none, in one transaction of ``transactional_id`` (a second process with
    that id fences a stuck one). ``ClusterError`` saying ``what`` was not written."""
    client = clients.producer(kafka, transactional_id=transactional_id)
    try:
        client.begin_transaction()
        for message in messages:
            produce_waiting(client, message)
        client.commit_transaction(60)
    except KafkaException as exc:
        try:
            client.abort_transaction(30)
        except KafkaException:
            pass  # the transaction times out on the broker: nothing of it is read committed
        raise ClusterError(f"{what} was not written: {clients.failure(exc)}") from exc
    finally:
        client.flush(5)
