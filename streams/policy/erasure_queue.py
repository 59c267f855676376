"""The erasure delay queue (issue "rights at national scale"): erasure requests wait until they are
due while the consumer of the rights topic keeps reading, instead of sleeping through the grace one
request after another. Values only: no Kafka, no clock; the adapter says what it read and when.

- A request is due ``grace`` after this worker read it. The request's own ``requested_at`` is the
  producer's word, so it cannot move the due time: a date in the past would skip the grace that
  lets every worker apply the stop first, one in the future would hold the erasure back.
- A later request of the same subject replaces a waiting erasure (the latest request per subject
  wins, as in the rights topic itself): a ``resume`` or ``stop`` cancels it, a new ``erase`` waits
  in its place.
- What may be committed, per partition of the rights topic, is the offset of the oldest request
  still waiting there, or the position after the last message read when none waits. A crash
  loses no request: the waiting ones are read again, and wait again (a later due time is the safe
  direction).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.policy.rights import RightsAction, RightsRequest


@dataclass(frozen=True, slots=True)
class Waiting:
    """An erasure request read at ``offset`` of rights ``partition``, due at ``due_ms``."""

    partition: int
    offset: int
    request: RightsRequest
    due_ms: int


@dataclass
class ErasureQueue:
    grace_ms: int
    _waiting: dict[str, Waiting] = field(default_factory=dict)  # by subject key
    _next: dict[int, int] = field(default_factory=dict)  # partition -> the offset after the last read

    def read(self, partition: int, offset: int, request: RightsRequest | None, *, read_at_ms: int) -> None:
        """One message of the rights topic, in offset order per partition (None: not a request, or
        a tombstone; it only moves the position)."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        if request is None:
            return
        self._waiting.pop(request.key, None)
        if request.action is RightsAction.ERASE:
            self._waiting[request.key] = Waiting(partition, offset, request, read_at_ms + self.grace_ms)

    def due(self, now_ms: int) -> list[Waiting]:
        """The requests due by ``now_ms``, oldest due first; they wait until ``done``."""
        return sorted((w for w in self._waiting.values() if w.due_ms <= now_ms), key=lambda w: (w.due_ms, w.offset))

    def done(self, handled: Iterable[Waiting]) -> None:
        """Handled (committed with their outputs): they no longer hold the position back."""
        for waiting in handled:
            if self._waiting.get(waiting.request.key) == waiting:
                del self._waiting[waiting.request.key]

    def next_due_ms(self) -> int | None:
        return min((w.due_ms for w in self._waiting.values()), default=None)

    def committable(self) -> dict[int, int]:
        """Per partition read: the offset from which a restarted reader must read again."""
        positions = dict(self._next)
        for waiting in self._waiting.values():
            positions[waiting.partition] = min(positions[waiting.partition], waiting.offset)
        return positions

    def forget(self, partitions: Iterable[int]) -> None:
        """Revoked partitions: their requests are their next owner's (it reads them from the committed
        position)."""
        gone = set(partitions)
        self._waiting = {key: w for key, w in self._waiting.items() if w.partition not in gone}
        for partition in gone:
            self._next.pop(partition, None)

    def __len__(self) -> int:
        return len(self._waiting)
