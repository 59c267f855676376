"""Following a whole topic from its beginning in a background thread: a worker's copy of a small
topic that every worker needs all of (the rights requests, the incidents).

No consumer group is joined (the group id is required by the client, never used): like a global
table, every follower reads every partition. ``start`` can wait until everything on the topic when
it started has been applied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streams.errors import ClusterError
from streams.kafka.reader import reader, topic_partitions

log = logging.getLogger("jointuse.follow")
LAG_INTERVAL = 5.0


def _lag(consumer: Consumer) -> int:
    """High watermark minus position, summed over the assigned partitions (a transaction marker
    counts as one record until the position passes it)."""
    total = 0
    for tp in consumer.position(consumer.assignment()):
        _, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        total += max(0, high - tp.offset) if tp.offset >= 0 else high
    return total


class TopicFollower:
    """Subclasses say what a message does to their state (``apply``), which must not raise for
    anything a message holds: a bad one is counted by the subclass and skipped."""

    name = "follower"

    def __init__(self, kafka: Mapping[str, Any], topic: str, *, group_id: str) -> None:
        self.topic = topic
        self.lag = 0  # records on the topic not applied yet, measured every LAG_INTERVAL seconds
        self._kafka = kafka
        self._group_id = group_id
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        raise NotImplementedError

    def start(self, timeout: float | None = 60) -> None:
        """Starts reading; with ``timeout``, returns once the topic as it was has been applied, or
        raises ``ClusterError`` (the topic cannot be read, or not within ``timeout`` seconds)."""
        consumer = reader(self._kafka, group_id=self._group_id)
        try:
            partitions = topic_partitions(consumer, self.topic)
        except ClusterError:
            consumer.close()
            raise
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._thread = threading.Thread(target=self._run, args=(consumer, set(partitions)), name=self.name, daemon=True)
        self._thread.start()
        if timeout is None:
            return
        if not self._caught_up.wait(timeout):
            self.stop()
            raise ClusterError(f"the topic {self.topic} could not be read within {timeout:.0f} s")
        if self._error is not None:
            raise ClusterError(f"the topic {self.topic} could not be read") from self._error

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def healthy(self) -> bool:
        return self._error is None and self._thread is not None and self._thread.is_alive()

    def _run(self, consumer: Consumer, pending: set[int]) -> None:
        measured = 0.0
        try:
            while not self._stopping.is_set():
                if time.monotonic() - measured >= LAG_INTERVAL:
                    try:
                        self.lag = _lag(consumer)
                    except KafkaException:
                        pass  # the broker does not answer: the last lag measured stands, the view goes on
                    measured = time.monotonic()
                for message in consumer.consume(500, 0.2):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard(message.partition() or 0)
                        else:
                            log.warning("read error", extra={"topic": self.topic, "error": str(error)})
                        continue
                    self.apply(message.key(), message.value())
                if not pending:
                    self._caught_up.set()
        except Exception as exc:  # the thread must report, not vanish: start() and health see it
            self._error = exc
            self._caught_up.set()
            log.exception("stopped following %s", self.topic)
        finally:
            consumer.close()
