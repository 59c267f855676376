"""Every worker's copy of the rights topic: the current request per subject, kept up to date.

The compacted rights topic is the state's changelog. Each worker reads all of its partitions (no
consumer group: like a global table, every worker needs every subject, whatever ingest partitions
it owns) and answers ``is_stopped`` from memory. ``start`` returns only once the whole topic has
been read, so a restarted worker never shares a record of a subject who asked to stop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streams.errors import ClusterError
from streams.kafka.reader import reader, topic_partitions
from streams.policy.rights import InvalidRightsRequest, RightsState, parse_request

log = logging.getLogger("jointuse.rights")
LAG_INTERVAL = 5.0


def _lag(consumer: Consumer) -> int:
    """High watermark minus position, summed over the assigned partitions. The rights topic is
    written without transactions, so no marker inflates it."""
    total = 0
    for tp in consumer.position(consumer.assignment()):
        _, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        total += max(0, high - tp.offset) if tp.offset >= 0 else high
    return total


def _lag_or(consumer: Consumer, last: int) -> int:
    """The lag, or the last one measured while the broker does not answer (the view keeps going)."""
    try:
        return _lag(consumer)
    except KafkaException:
        return last


class RightsView:
    def __init__(self, kafka: dict[str, Any], topic: str, *, group_id: str) -> None:
        self.topic = topic
        self.state = RightsState()
        self.invalid = 0
        self.applied = 0
        self.lag = 0  # records on the topic not applied yet, measured every LAG_INTERVAL seconds
        self._kafka = kafka
        self._group_id = group_id
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def is_stopped(self, source: str, customer_id: str) -> bool:
        return self.state.is_stopped(source, customer_id)

    def start(self, timeout: float = 60) -> None:
        consumer = reader(self._kafka, group_id=self._group_id)
        partitions = topic_partitions(consumer, self.topic)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._thread = threading.Thread(
            target=self._run, args=(consumer, set(partitions)), name="rights-view", daemon=True
        )
        self._thread.start()
        if not self._caught_up.wait(timeout):
            self.stop()
            raise ClusterError(f"the rights topic {self.topic} could not be read within {timeout:.0f} s")
        if self._error is not None:
            raise ClusterError(f"the rights topic {self.topic} could not be read") from self._error

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, consumer: Consumer, pending: set[int]) -> None:
        measured = 0.0
        try:
            while not self._stopping.is_set():
                if time.monotonic() - measured >= LAG_INTERVAL:
                    self.lag = _lag_or(consumer, self.lag)
                    measured = time.monotonic()
                for message in consumer.consume(500, 0.2):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(message.partition() or 0)
                        else:
                            log.warning("rights topic read error", extra={"error": str(error)})
                        continue
                    self._apply(message.key(), message.value())
                if not pending:
                    self._caught_up.set()
        except Exception as exc:  # the thread must report, not vanish: start() and health see it
            self._error = exc
            self._caught_up.set()
            log.exception("the rights view stopped")
        finally:
            consumer.close()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            self.invalid += 1
            return
        text = key.decode("utf-8", "replace")
        if value is None:
            self.state.apply(text, None)
            self.applied += 1
            return
        try:
            request = parse_request(value)
        except InvalidRightsRequest as exc:
            self.invalid += 1
            log.warning("ignored an invalid rights request", extra={"error": str(exc)})
            return
        if request.key != text:
            self.invalid += 1
            log.warning("ignored a rights request whose key differs from its subject")
            return
        self.state.apply(text, request)
        self.applied += 1

    @property
    def healthy(self) -> bool:
        return self._error is None and self._thread is not None and self._thread.is_alive()
