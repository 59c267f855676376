"""The subject index's lag probe: whether audit events lie between what the index has applied and
an end offset, read with a consumer of its own. Used by the index's lookups (``index_app``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.errors import ClusterError
from streams.kafka import clients

PROBE_ENOUGH = 100  # a lag is counted up to this (the answer says "at least")
OFFSETS_TIMEOUT_SECONDS = 5.0  # the consumer's thread is busy while it joins the group


class AuditProbe:
    """Whether any audit event lies between what the agent has applied and an end offset: read
    with a consumer of its own (committed events only, no group membership). Offsets alone cannot
    say it: a transaction's commit marker takes an offset too, and faust drops fetched records it
    has not handed to the agent when a rebalance starts (they are read again after a seek)."""

    def __init__(self, kafka: Mapping[str, Any], topic: str, *, group_id: str) -> None:
        """``group_id`` is the index's group: its committed offsets are where a probe starts."""
        self.kafka = kafka
        self.topic = topic
        self.group_id = group_id
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None

    def unapplied(self, partition: int, start: int | None, end: int) -> int:
        """Events in [start, end) of the audit partition (counted up to a few); with ``start``
        None, from the index group's committed offset."""
        with self._lock:
            consumer = self._client()
            tp = TopicPartition(self.topic, partition)
            if start is None:
                (committed,) = consumer.committed([tp], timeout=OFFSETS_TIMEOUT_SECONDS)
                start = max(committed.offset, 0)
            if start >= end:
                return 0
            consumer.assign([TopicPartition(self.topic, partition, start)])
            found = 0
            deadline = time.monotonic() + OFFSETS_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return found
                    raise ClusterError(f"cannot read {self.topic} ({error.name()})")
                if (message.offset() or 0) >= end:
                    return found
                found += 1
                if found >= PROBE_ENOUGH:
                    return found
            raise ClusterError(f"no answer reading {self.topic} within {OFFSETS_TIMEOUT_SECONDS} s")

    def _client(self) -> Consumer:
        if self._consumer is None:
            # Only to read the index's committed offsets; a probe usually finds nothing (or a
            # commit marker): answer at once, not after the broker's default half-second wait.
            self._consumer = clients.reading_consumer(self.kafka, self.group_id, partition_eof=True, fetch_wait_ms=5)
        return self._consumer
