"""Messages held back for a while after they were read, while reading goes on (the erasure delay).

An erasure must wait until every worker has applied the subject's stop, so that no delivery can
follow its tombstones. Sleeping through that grace inside the processor stopped the consumer: one
request after another, past ``max.poll.interval.ms``. Instead the batch loop puts what it fetches
here and processes what is due; the consumer keeps polling.

- Each partition is a queue in offset order: a message is released ``hold_ms`` after it was read,
  never before an earlier one of its partition. So the offsets a batch commits are always a prefix
  of what was read, and a crash or a rebalance loses nothing (the held messages are read again from
  the committed offset, and wait again: a later release is the safe direction).
- The due time counts from when this worker read the message, not from a time the producer wrote.
- ``has_later`` tells whether a later message with the same key was read (the rights topic is keyed
  by subject, so the latest request of a subject wins, as in every worker's rights view): a resume
  filed during the grace cancels the erasure.

Values only: no clock (the loop passes the time), no Kafka.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streams.messages import InMessage

Partition = tuple[str, int]


@dataclass
class HeldMessages:
    hold_ms: int
    _queues: dict[Partition, deque[tuple[int, InMessage]]] = field(default_factory=dict)  # (due, message)
    _latest: dict[tuple[Partition, bytes], int] = field(default_factory=dict)  # key -> latest offset read
    _released_to: dict[Partition, int] = field(default_factory=dict)  # the offset after the last released

    def read(self, batch: Iterable[InMessage], now_ms: int) -> None:
        """Messages fetched at ``now_ms``, in offset order per partition."""
        for message in batch:
            partition = (message.topic, message.partition)
            self._queues.setdefault(partition, deque()).append((now_ms + self.hold_ms, message))
            if message.key is not None:
                self._latest[(partition, message.key)] = message.offset

    def release(self, now_ms: int) -> list[InMessage]:
        """The messages due by ``now_ms``: per partition, the longest due prefix."""
        self._forget_released_keys()
        released: list[InMessage] = []
        for partition, queue in self._queues.items():
            while queue and queue[0][0] <= now_ms:
                message = queue.popleft()[1]
                released.append(message)
                self._released_to[partition] = message.offset + 1
        return released

    def put_back(self, batch: Sequence[InMessage], due_ms: int) -> None:
        """A released batch that could not be processed now (a dependency is down): held again, in
        front of its partitions' queues, until ``due_ms``."""
        for message in reversed(batch):
            partition = (message.topic, message.partition)
            self._queues.setdefault(partition, deque()).appendleft((due_ms, message))
            if self._released_to.get(partition, -1) > message.offset:
                self._released_to[partition] = message.offset

    def has_later(self, message: InMessage) -> bool:
        """Whether a message with the same key was read after ``message`` (in its partition)."""
        if message.key is None:
            return False
        return self._latest.get(((message.topic, message.partition), message.key), -1) > message.offset

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Revoked or rewound partitions: what was held of them is read again from the committed
        offset (by this worker or their next owner)."""
        gone = set(partitions)
        for partition in gone:
            self._queues.pop(partition, None)
            self._released_to.pop(partition, None)
        self._latest = {k: o for k, o in self._latest.items() if k[0] not in gone}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def _forget_released_keys(self) -> None:
        # A key's latest offset is needed until that message was released and processed (the
        # processor asks ``has_later`` for the batch just released): dropped at the next release.
        self._latest = {k: o for k, o in self._latest.items() if o >= self._released_to.get(k[0], -1)}
