"""The consume → process → produce loop, one Kafka transaction per batch.

faust-streaming's own exactly-once is known to duplicate after kills and rebalances (see
docs/architecture.md), so the worker owns its transactions with confluent-kafka: each batch's
deliveries, dead letters, audit events and consumed offsets are committed atomically, or not at all.
With ``guarantee="at_least_once"`` the outputs are flushed before the offsets are committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.errors import KafkaError as JointUseKafkaError
from streams.errors import RegistryError
from streams.metrics import PipelineMetrics
from streams.policy.decision import Status
from streams.streaming.processor import InMessage, Outcome
from streams.streaming.produce import SAME_PARTITIONS_AS_JAVA, produce_waiting
from streams.topology import Topology

Guarantee = Literal["exactly_once", "at_least_once"]
log = logging.getLogger("jointuse.worker")


class MessageProcessor(Protocol):
    """What a runner drives: the pipeline's ``Processor``, the erasure side's ``RightsProcessor``."""

    def process(self, message: InMessage) -> Outcome: ...  # pragma: no cover


@dataclass
class RunnerStats:
    batches: int = 0
    records: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in Status})
    aborted_batches: int = 0


@dataclass(frozen=True)
class RunnerConfig:
    kafka: dict[str, Any]
    group_id: str
    transactional_id: str
    guarantee: Guarantee = "exactly_once"
    batch_size: int = 500
    poll_timeout: float = 0.05
    subscription: tuple[str, ...] = ()  # topics or ^regexes; empty: every company's ingest topic


class Runner:
    def __init__(
        self,
        config: RunnerConfig,
        processor: MessageProcessor,
        topology: Topology,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.config = config
        self.processor = processor
        self.topology = topology
        self.metrics = metrics
        self.stats = RunnerStats()
        # Called with each committed batch's outcomes (data-quality sampling); must not block.
        self.on_committed: Callable[[list[Outcome]], None] = lambda outcomes: None
        self.stopping = threading.Event()
        self.assigned: set[tuple[str, int]] = set()
        transactional = config.guarantee == "exactly_once"
        self.consumer = Consumer(
            {
                **config.kafka,
                "group.id": config.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                # A killed worker is noticed in 10 s instead of 45 s: its partitions move on sooner.
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 2_000,
                "fetch.max.bytes": 16_777_216,
                "max.partition.fetch.bytes": 8_388_608,
            }
        )
        producer_conf: dict[str, Any] = {
            **config.kafka,
            **SAME_PARTITIONS_AS_JAVA,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": 8_388_608,
        }
        if transactional:
            producer_conf["transactional.id"] = config.transactional_id
            producer_conf["transaction.timeout.ms"] = 30_000
        self.producer = Producer(producer_conf)
        if transactional:
            try:
                self.producer.init_transactions(60)
            except KafkaException as exc:
                raise JointUseKafkaError(f"cannot initialise transactions ({exc.args[0]})") from exc

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.update((p.topic, p.partition) for p in partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.difference_update((p.topic, p.partition) for p in partitions)

    def subscribe(self) -> None:
        self.consumer.subscribe(
            list(self.config.subscription) or [self.topology.ingest_pattern()],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def run(self, *, max_idle_seconds: float | None = None) -> RunnerStats:
        """Runs until ``stop()`` (or, with ``max_idle_seconds``, until idle that long)."""
        self.subscribe()
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                batch = self.consumer.consume(self.config.batch_size, self.config.poll_timeout)
                messages = [m for m in batch if not self._is_error(m)]
                if not messages:
                    if max_idle_seconds is not None and time.monotonic() - idle_since > max_idle_seconds:
                        break
                    continue
                idle_since = time.monotonic()
                self._process_batch(messages)
        finally:
            self.close()
        return self.stats

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        try:
            self.consumer.close()
        except RuntimeError:
            pass  # already closed

    @staticmethod
    def _is_error(message: Message) -> bool:
        error = message.error()
        if error is None:
            return False
        if error.code() == KafkaError._PARTITION_EOF:
            return True
        log.warning("consume error", extra={"error": str(error)})
        return True

    def _process_batch(self, messages: list[Message]) -> None:
        inputs = [in_message(m) for m in messages]
        started = time.perf_counter()
        try:
            outcomes = [self.processor.process(message) for message in inputs]
        except (RegistryError, JointUseKafkaError) as exc:
            # Not the record's fault (the registry, or a lookup on the cluster): retry the batch from
            # its first offset after a pause.
            log.error("a dependency is unavailable; retrying batch", extra={"error": str(exc)})
            self._rewind(inputs)
            time.sleep(1.0)
            return
        if self.metrics is not None:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        offsets = self._next_offsets(inputs)
        if self.config.guarantee == "exactly_once":
            if not self._commit_transaction(outcomes, offsets):
                self._rewind(inputs)
                return
        else:
            self._produce_all(outcomes)
            if self.producer.flush(60):
                self._rewind(inputs)
                return
            self.consumer.commit(offsets=offsets, asynchronous=False)
        self.stats.batches += 1
        self.stats.records += len(inputs)
        for outcome in outcomes:
            self.stats.by_status[outcome.status.value] += 1
        if self.metrics is not None:
            self.metrics.transactions.labels("committed").inc()
            self.metrics.observe(zip(inputs, outcomes, strict=True))
        self.on_committed(outcomes)

    def _produce_all(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            for message in outcome.messages:
                produce_waiting(self.producer, message)

    def _commit_transaction(self, outcomes: list[Outcome], offsets: list[TopicPartition]) -> bool:
        try:
            self.producer.begin_transaction()
            self._produce_all(outcomes)
            self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), 60)
            self.producer.commit_transaction(60)
            return True
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                raise JointUseKafkaError(f"fatal transaction error ({error}); the worker must restart") from exc
            log.warning("transaction aborted; retrying batch", extra={"error": str(error)})
            self.stats.aborted_batches += 1
            if self.metrics is not None:
                self.metrics.transactions.labels("aborted").inc()
            try:
                self.producer.abort_transaction(60)
            except KafkaException as abort_exc:
                raise JointUseKafkaError("cannot abort the transaction") from abort_exc
            return False

    @staticmethod
    def _next_offsets(inputs: list[InMessage]) -> list[TopicPartition]:
        highest: dict[tuple[str, int], int] = {}
        for message in inputs:
            position = (message.topic, message.partition)
            highest[position] = max(highest.get(position, -1), message.offset)
        return [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]

    def _rewind(self, inputs: list[InMessage]) -> None:
        lowest: dict[tuple[str, int], int] = {}
        for message in inputs:
            position = (message.topic, message.partition)
            lowest[position] = min(lowest.get(position, message.offset), message.offset)
        for (topic, partition), offset in lowest.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException:
                pass  # the partition was revoked meanwhile; its new owner starts at the committed offset


def in_message(message: Message) -> InMessage:
    headers = message.headers() or []
    return InMessage(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        timestamp_ms=message.timestamp()[1],
        headers=list(headers.items()) if isinstance(headers, dict) else list(headers),
    )
