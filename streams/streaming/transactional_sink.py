"""Writes one batch's outputs and consumed offsets in one Kafka transaction, with aiokafka (the faust
worker's client library), so that the faust agent owns exactly-once instead of faust's own
``processing_guarantee``, which is known to duplicate after kills and rebalances.

A batch either commits or is retried; it never half-commits. The caller must not let a batch's
events be acknowledged before ``write`` returned: faust commits acknowledged offsets on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.errors import ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from streams.errors import KafkaError
from streams.streaming.processor import OutMessage

log = logging.getLogger("jointuse.worker")


class TransactionalSink:
    def __init__(
        self,
        *,
        kafka: dict[str, Any],
        transactional_id: str | None,
        group_id: str,
        on_abort: Callable[[], None] = lambda: None,
    ) -> None:
        """``transactional_id=None`` gives at-least-once: outputs are flushed before the batch is
        acknowledged, and faust commits the offsets afterwards."""
        self.group_id = group_id
        self.transactional = transactional_id is not None
        self.producer = AIOKafkaProducer(
            **kafka,
            transactional_id=transactional_id,
            enable_idempotence=True,
            transaction_timeout_ms=30_000,
            max_request_size=8_388_608,
            max_batch_size=1_048_576,
            linger_ms=5,
        )
        self.started = False
        self.on_abort = on_abort
        self._partitioner = DefaultPartitioner()

    async def start(self) -> None:
        if not self.started:
            await self.producer.start()
            self.started = True

    async def stop(self) -> None:
        if self.started:
            await self.producer.stop()
            self.started = False

    async def write(
        self, messages: Sequence[OutMessage], offsets: dict[tuple[str, int], int], *, attempts: int = 5
    ) -> None:
        """Commits ``messages`` and the next ``offsets`` atomically. Retries an aborted transaction;
        raises ``KafkaError`` when the producer was fenced or every attempt failed."""
        await self.start()
        if not self.transactional:
            await self._write_plain(messages)
            return
        commit = {TopicPartition(topic, partition): offset for (topic, partition), offset in offsets.items()}
        for attempt in range(1, attempts + 1):
            try:
                async with self.producer.transaction():
                    sends = await self._send_batched(messages)
                    await self.producer.send_offsets_to_transaction(commit, self.group_id)
                await asyncio.gather(*sends)
                return
            except ProducerFenced as exc:
                raise KafkaError("another worker with the same transactional id took over (fenced)") from exc
            except AIOKafkaError as exc:
                self.on_abort()
                log.warning("transaction aborted, attempt %d of %d (%s)", attempt, attempts, exc.__class__.__name__)
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        raise KafkaError(f"the batch could not be committed after {attempts} attempts")

    async def _send_batched(self, messages: Sequence[OutMessage]) -> list[asyncio.Future[Any]]:
        """Appends the messages to one record batch per partition and sends the batches: far less
        per-message work than ``send()``, which awaits and makes a future for every message. Keys
        are partitioned with murmur2, as ``send()`` and Java clients do."""
        by_partition: dict[tuple[str, int], list[OutMessage]] = {}
        # Looked up per batch (from the client's metadata, refreshed in the background), so that
        # added partitions are used as every other client uses them.
        known: dict[str, list[int]] = {}
        for message in messages:
            partitions = known.get(message.topic)
            if partitions is None:
                partitions = sorted(await self.producer.partitions_for(message.topic))
                known[message.topic] = partitions
            partition = self._partitioner(message.key, partitions, partitions)
            by_partition.setdefault((message.topic, partition), []).append(message)
        sends = []
        for (topic, partition), group in by_partition.items():
            batch = self.producer.create_batch()
            for message in group:
                headers = _headers(message)
                # A full batch refuses the message (an empty one takes any): send it, start the next.
                while batch.append(key=message.key, value=message.value, timestamp=None, headers=headers) is None:
                    sends.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
            sends.append(await self.producer.send_batch(batch, topic, partition=partition))
        return sends

    async def _write_plain(self, messages: Sequence[OutMessage]) -> None:
        try:
            sends = await self._send_batched(messages)
            await asyncio.gather(*sends)
        except AIOKafkaError as exc:
            raise KafkaError(f"the batch could not be written ({exc.__class__.__name__})") from exc


def _headers(message: OutMessage) -> list[tuple[str, bytes]]:
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in message.headers]
