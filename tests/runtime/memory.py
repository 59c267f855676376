"""An in-memory broker and transport that drive the real BatchLoop without Kafka (as Bytewax's
testing module drives its real dataflow loop). Failures are injected per transaction step."""

from __future__ import annotations

from collections.abc import Sequence

from streams.messages import InMessage, Outcome, OutMessage
from streams.policy.decision import Status
from streams.runtime.transaction import ErrorKind, Offsets


class Retriable(Exception):
    pass


class Abortable(Exception):
    pass


class Fenced(Exception):
    pass


class Renewable(Exception):
    """The producer cannot go on; a new one can (a transaction the coordinator timed out)."""


class GroupChanged(Exception):
    """The group refused offsets sent with a membership it has moved past."""


class MemoryBroker:
    """Partitioned input logs, the group's committed offsets, and the committed outputs."""

    def __init__(self, topic: str = "in", partitions: int = 2) -> None:
        self.topic = topic
        self.logs: dict[tuple[str, int], list[InMessage]] = {(topic, p): [] for p in range(partitions)}
        self.committed: Offsets = {}
        self.outputs: list[OutMessage] = []

    def append(self, partition: int, value: bytes) -> None:
        log = self.logs[(self.topic, partition)]
        log.append(InMessage(self.topic, partition, len(log), b"k", value, 0))

    def fill(self, per_partition: int) -> None:
        for partition in range(len(self.logs)):
            for index in range(per_partition):
                self.append(partition, f"{partition}-{index}".encode())


class MemoryTransport:
    def __init__(
        self,
        broker: MemoryBroker,
        *,
        batch_size: int = 3,
        can_rewind: bool = True,
        transactional: bool = True,
        partitions: set[tuple[str, int]] | None = None,
        fences_zombies: bool = True,
    ) -> None:
        """``fences_zombies=False`` accepts offsets of revoked partitions, as the broker does for
        aiokafka (it sends no group generation with transactional offsets; confluent does, KIP-447)."""
        self.broker = broker
        self.fences_zombies = fences_zombies
        self.batch_size = batch_size
        self.can_rewind = can_rewind
        self.transactional = transactional
        self.owned = set(partitions if partitions is not None else broker.logs)
        self.positions = {tp: broker.committed.get(tp, 0) for tp in self.owned}
        self.failures: dict[str, list[BaseException]] = {}
        self.calls: list[str] = []
        self.pending: list[OutMessage] = []
        self.pending_offsets: Offsets = {}
        self.on_fetch: list[object] = []  # callables run before a fetch (e.g. a rebalance)
        self.before: dict[str, list[object]] = {}  # one callable taken before each call of a step (a rejoin)
        self._reset_after_transaction = False
        self.renewals = 0
        self.generation = 1  # the group's generation, which the offsets of a transaction are checked against

    def fail(self, step: str, *errors: BaseException) -> None:
        self.failures.setdefault(step, []).extend(errors)

    def _maybe_fail(self, step: str) -> None:
        self.calls.append(step)
        hooks = self.before.get(step)
        if hooks:
            hooks.pop(0)()  # type: ignore[operator]
        queued = self.failures.get(step)
        if queued:
            raise queued.pop(0)

    def revoke(self, topic_partition: tuple[str, int]) -> None:
        self.owned.discard(topic_partition)
        self.positions.pop(topic_partition, None)

    def rejoin(self) -> None:
        """A rebalance that gives this member its partitions again, as aiokafka does: a new
        generation, and every position from the committed offsets (the revocation is not seen). The
        offsets of an open transaction hold them until it ends (a stable fetch, KIP-447)."""
        self.generation += 1
        if self.pending_offsets:
            self._reset_after_transaction = True
        else:
            self._reset_positions()

    def _reset_positions(self) -> None:
        self._reset_after_transaction = False
        self.positions = {tp: self.broker.committed.get(tp, 0) for tp in self.owned}

    def membership(self) -> int:
        return self.generation

    async def fetch(self) -> Sequence[InMessage]:
        for hook in list(self.on_fetch):
            hook()  # type: ignore[operator]
        batch: list[InMessage] = []
        for tp in sorted(self.owned):
            log = self.broker.logs[tp]
            while len(batch) < self.batch_size and self.positions[tp] < len(log):
                batch.append(log[self.positions[tp]])
                self.positions[tp] += 1
        return batch

    async def begin(self) -> None:
        self._maybe_fail("begin")
        self.pending, self.pending_offsets = [], {}

    async def write(self, messages: Sequence[OutMessage]) -> None:
        self._maybe_fail("write")
        self.pending.extend(messages)
        if not self.transactional:
            self.broker.outputs.extend(self.pending)
            self.pending = []

    async def send_offsets(self, offsets: Offsets, membership: object) -> None:
        self._maybe_fail("send_offsets")
        if self.fences_zombies and any(tp not in self.owned for tp in offsets):
            raise Abortable("the group's generation moved on (a partition was revoked)")
        if self.fences_zombies and self.transactional and membership != self.generation:
            raise GroupChanged(f"read under generation {membership}, the group is at {self.generation}")
        if self.transactional:
            self.pending_offsets = dict(offsets)
        else:
            self.broker.committed.update(offsets)

    async def commit(self) -> None:
        self._maybe_fail("commit")
        self.broker.outputs.extend(self.pending)
        self.broker.committed.update(self.pending_offsets)
        self.pending, self.pending_offsets = [], {}
        if self._reset_after_transaction:
            self._reset_positions()

    async def abort(self) -> None:
        self._maybe_fail("abort")
        self.pending, self.pending_offsets = [], {}
        if self._reset_after_transaction:
            self._reset_positions()

    async def renew(self) -> None:
        self._maybe_fail("renew")
        self.pending, self.pending_offsets = [], {}  # the new producer's start aborts the old transaction
        self.renewals += 1

    async def rewind(self, positions: Offsets) -> None:
        self.calls.append("rewind")
        for tp, offset in positions.items():
            if tp in self.owned:
                self.positions[tp] = offset

    def assigned(self) -> set[tuple[str, int]]:
        return set(self.owned)

    def classify(self, error: BaseException) -> ErrorKind:
        if isinstance(error, Retriable):
            return ErrorKind.RETRIABLE
        if isinstance(error, Abortable):
            return ErrorKind.ABORTABLE
        if isinstance(error, Renewable):
            return ErrorKind.RENEW
        if isinstance(error, GroupChanged):
            return ErrorKind.GROUP_CHANGED
        return ErrorKind.FATAL


class Echo:
    """A processor that writes one output per input, named after it."""

    def process(self, message: InMessage) -> Outcome:
        out = OutMessage("out", message.key, message.value, [])
        return Outcome(Status.SHARED, "shared", "jcom", (out,), {}, ())
