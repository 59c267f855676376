"""The one batch loop of every runtime: fetch a batch, run a processor over it, and write the outputs
with the consumed offsets in one transaction (or, at least once, the outputs and then the offsets).

A transport adapts one client library; it only fetches batches, runs the steps of a transaction,
rewinds, and says what kind an error of its library is. The loop owns the rest, and one error policy:
- a retriable error (the client says so) is retried with capped backoff until a deadline, then
  the transaction is aborted and the batch done again; a dependency that does not answer (the
  registry while deciding, the broker while committing) is waited out however long it takes: an
  outage pauses the loop, never stops it;
- an assignment change (``revoke``) waits for the transaction in flight, and drops the revoked
  partitions from every batch whose transaction has not begun: their next owner reads them from the
  committed offsets. A transport whose commits are not fenced after a rebalance (aiokafka sends no
  group generation with its offsets) relies on this for exactly-once;
- an abortable error aborts the transaction; a transport that can seek rewinds to the batch's first
  offsets (on the partitions it still owns) and fetches again, one that cannot writes the batch again
  in a new transaction; too many aborts in a row are fatal;
- a producer that cannot go on but can be replaced (a transaction the coordinator aborted after
  an outage longer than its timeout) is replaced and the batch done again; replaced more than
  ``max_renewals`` times within ``renewals_within`` seconds, it is fatal;
- a fatal error (fenced, unauthorized, or the client says fatal, or anything unknown) stops the loop
  with ``FatalError``: one clear line, and the worker exits with ``Exit.FATAL``.
A loop may hold what it fetches for a while before processing it (``held``, the erasure delay):
the transport keeps polling meanwhile, and a batch whose dependency is down (the subject index) is
held again and retried, never fatal, because waiting is what such a loop does anyway.
No record stops the loop: processors turn every bad input into a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from streams.errors import DEPENDENCY_ERRORS, FatalError
from streams.messages import InMessage, OutMessage, Written
from streams.runtime.held import HeldMessages
from streams.runtime.transaction import Aborted, ErrorPolicy, Offsets, Writer, transact

log = logging.getLogger("jointuse.worker")


OutcomeT = TypeVar("OutcomeT", bound=Written)  # a processor's outcome type
OutcomeT_co = TypeVar("OutcomeT_co", bound=Written, covariant=True)


class BatchProcessor(Protocol[OutcomeT_co]):
    def process(self, message: InMessage) -> OutcomeT_co: ...  # pragma: no cover


class Sealer(Protocol):
    """Sees each batch's messages just before its transaction and follows how it ends
    (``streams.audit.sealer.AuditSealer`` chains the audit events)."""

    def seal(self, messages: Sequence[OutMessage]) -> list[OutMessage]: ...  # pragma: no cover
    def committed(self) -> None: ...  # pragma: no cover
    def aborted(self) -> None: ...  # pragma: no cover


class Transport(Writer, Protocol):
    """What one client library provides to the loop: the write side, and fetching."""

    can_rewind: bool  # whether ``rewind`` can seek; otherwise an aborted batch is written again

    async def fetch(self) -> Sequence[InMessage] | None: ...  # pragma: no cover  # None: the source ended
    async def rewind(self, positions: Offsets) -> None: ...  # pragma: no cover
    def assigned(self) -> set[tuple[str, int]]: ...  # pragma: no cover
    # The group membership the batch ``fetch`` just returned was read under (opaque; None without a
    # group). Its offsets are sent with it, so the group refuses them once it has moved on.
    def membership(self) -> object: ...  # pragma: no cover


@dataclass
class LoopStats:
    batches: int = 0
    records: int = 0
    by_status: dict[str, int] = field(default_factory=dict)  # in the words of the processor's outcome type
    aborted_batches: int = 0


class BatchLoop(Generic[OutcomeT]):
    def __init__(
        self,
        transport: Transport,
        processor: BatchProcessor[OutcomeT],
        *,
        policy: ErrorPolicy | None = None,
        offload: bool = False,
        pipelined: bool = False,
        held: HeldMessages | None = None,
        sealer: Sealer | None = None,
        pack: Callable[[Sequence[OutMessage]], list[OutMessage]] | None = None,
        decide: Callable[[list[InMessage]], Awaitable[list[OutcomeT]]] | None = None,
    ) -> None:
        """``offload`` decides in a thread (an event loop with other work on it); ``pipelined``
        decides batch N+1 while batch N commits (transactions still commit one after the other, in
        order; when N is aborted and rewound, N+1 is dropped and fetched again after it); ``held``
        processes each message only once it is due there (not with ``pipelined``); ``sealer`` sees
        every batch's messages just before its transaction, and its outcome (the audit chain);
        ``pack`` reshapes a batch's messages before they are sealed (the statistics contributions of
        a transaction in one message), and must write what they say, in fewer messages; ``decide``
        gives a batch's outcomes, in its order, in place of ``processor.process`` (the deciding
        processes of ``streams.worker.deciders``), and raises as the processor does."""
        if held is not None and pipelined:
            raise ValueError("a loop that holds messages commits one batch at a time (pipelined=False)")
        self.transport = transport
        self.processor = processor
        self.policy = policy or ErrorPolicy()
        self.offload = offload
        self.pipelined = pipelined
        self.held = held
        self.sealer = sealer
        self.pack = pack
        self.decide = decide
        self.stats = LoopStats()
        self.on_committed: list[Callable[[Sequence[InMessage], Sequence[OutcomeT]], None]] = []
        self.on_abort: list[Callable[[], None]] = []
        self.on_batch_seconds: list[Callable[[float], None]] = []
        self._stopping = False
        self._aborts_in_a_row = 0
        self._renewals: list[float] = []  # when the producer was renewed (ErrorKind.RENEW)
        self._committing: asyncio.Future[Offsets | None] | None = None
        self._commit_began: float | None = None  # monotonic time the batch in hand began to commit
        self._outage = False  # the last transaction was aborted by an outage; cleared by a commit
        # Assignment epochs: a batch fetched at epoch e keeps a partition only while it was not
        # revoked after e (``revoke``).
        self._epoch = 0
        self._revoked_at: dict[tuple[str, int], int] = {}

    def stop(self) -> None:
        self._stopping = True

    @property
    def writing(self) -> bool:
        """Whether transactions commit: not after one was aborted by an outage (until the next
        commits), nor while one is stalled (a cluster without a quorum, or with fewer in-sync
        replicas than a topic needs, answers metadata but acknowledges no write)."""
        began = self._commit_began
        if began is not None and time.monotonic() - began > self.policy.stalled_after_seconds:
            return False
        return not self._outage

    def drop_revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The part of ``revoke`` that does not wait, for a transport whose revocation callback
        cannot (confluent's runs inside ``consume``): no transaction that begins from now on writes
        for ``partitions``."""
        self._epoch += 1
        revoked = list(partitions)
        for partition in revoked:
            self._revoked_at[partition] = self._epoch
        if self.held is not None:
            self.held.forget(revoked)

    async def revoke(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The assignment changed: ``partitions`` go to their next owner, who starts at the group's
        committed offsets. No transaction that begins from now on writes for them, and this returns
        once the transaction in flight (if any) has ended, so the committed offsets are final when
        the rebalance goes on. Call it from the transport's revocation callback, before the group
        rejoins."""
        self.drop_revoked(partitions)
        committing = self._committing
        if committing is not None and not committing.done():
            await asyncio.wait([committing])  # its outcome (or error) is the loop's to handle

    async def run(self, *, max_idle_seconds: float | None = None) -> LoopStats:
        """Runs until ``stop()`` (or idle that long). Raises ``FatalError``."""
        idle_since = time.monotonic()
        try:
            while not self._stopping:
                fetched = await self.transport.fetch()
                if fetched is None:
                    break
                # No await between the fetch's return and this: a revocation after it is seen.
                epoch = self._epoch
                membership = self.transport.membership()
                batch = list(fetched)
                if self.held is not None:
                    now_ms = _now_ms()
                    self.held.read(batch, now_ms)
                    batch = self.held.release(now_ms)
                if not batch:
                    if await self._committed_in_flight() is not None:
                        continue  # the batch in flight was rewound: it is fetched again
                    if self.held:
                        idle_since = time.monotonic()  # messages waiting: not idle
                    elif max_idle_seconds is not None and time.monotonic() - idle_since > max_idle_seconds:
                        break
                    continue
                idle_since = time.monotonic()
                deciding = asyncio.ensure_future(self._decide(batch))
                try:
                    rewound = await self._committed_in_flight()
                except BaseException:
                    deciding.cancel()
                    raise
                try:
                    outcomes = await deciding
                except _Deferred:
                    self._hold_again(batch, epoch)
                    continue
                if rewound is not None:  # this batch was fetched after the one rewound: again, too
                    owned = self.transport.assigned()
                    positions = first_offsets(batch).items()
                    await self.transport.rewind({tp: o for tp, o in positions if tp in owned and tp not in rewound})
                    continue
                self._committing = asyncio.ensure_future(self._commit(batch, outcomes, epoch, membership))
                if not self.pipelined:
                    await self._committed_in_flight()
        finally:
            await self._committed_in_flight()
        return self.stats

    async def _committed_in_flight(self) -> Offsets | None:
        """Waits for the batch in flight; the positions it rewound to, if it was rewound."""
        committing = self._committing
        if committing is None:
            return None
        try:
            return await committing
        finally:
            if self._committing is committing:  # ``revoke`` may be waiting on it too
                self._committing = None

    async def _decide(self, batch: list[InMessage]) -> list[OutcomeT]:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                if self.decide is not None:
                    outcomes = await self.decide(batch)
                elif self.offload:
                    outcomes = await asyncio.get_running_loop().run_in_executor(None, self._process_all, batch)
                else:
                    outcomes = self._process_all(batch)
            except DEPENDENCY_ERRORS as exc:
                if self.held is not None:
                    log.warning("a dependency is unavailable; the batch waits again", extra={"error": str(exc)})
                    raise _Deferred from exc
                # An outage is waited out, however long: the batch is decided once the dependency
                # answers again (readiness says 503 meanwhile). Logged when it starts, then each minute.
                if attempt == 1 or attempt % self.policy.outage_log_every == 0:
                    log.warning("a dependency is unavailable; the batch waits", extra={"error": str(exc)})
                await asyncio.sleep(self.policy.backoff(attempt))
                continue
            except FatalError:
                raise
            except Exception as exc:  # processors never raise for a record: this is a bug
                raise FatalError(f"the processor failed ({type(exc).__name__})") from exc
            if attempt > 1:
                log.info("the dependency answers again; the batch was decided", extra={"attempts": attempt})
            for observe in self.on_batch_seconds:
                observe(time.perf_counter() - started)
            return outcomes

    def _hold_again(self, batch: list[InMessage], epoch: int) -> None:
        """A held batch whose dependency was down waits again (the partitions revoked meanwhile are
        their next owner's)."""
        assert self.held is not None
        owned = [m for m in batch if self._owned_since(m, epoch)]
        self.held.put_back(owned, _now_ms() + int(self.policy.backoff_max_seconds * 1000))

    def _process_all(self, batch: list[InMessage]) -> list[OutcomeT]:
        return [self.processor.process(message) for message in batch]

    def _owned_since(self, message: InMessage, epoch: int) -> bool:
        """Whether the partition of ``message`` has not been revoked since ``epoch``."""
        return self._revoked_at.get((message.topic, message.partition), 0) <= epoch

    def _still_owned(
        self, batch: list[InMessage], outcomes: list[OutcomeT], epoch: int
    ) -> tuple[list[InMessage], list[OutcomeT]]:
        """The batch without the inputs (and their outcomes) of partitions revoked since ``epoch``."""
        if epoch == self._epoch:
            return batch, outcomes  # no revocation since the batch was fetched
        kept = [
            (message, outcome)
            for message, outcome in zip(batch, outcomes, strict=True)
            if self._owned_since(message, epoch)
        ]
        if len(kept) == len(batch):
            return batch, outcomes
        dropped = len(batch) - len(kept)
        log.info("a rebalance took partitions of a batch; their next owner does them", extra={"dropped": dropped})
        return [m for m, _ in kept], [o for _, o in kept]

    async def _commit(
        self, batch: list[InMessage], outcomes: list[OutcomeT], epoch: int, membership: object
    ) -> Offsets | None:
        """Commits the batch (aborted ones are written again), or rewinds it: then the positions. A
        batch the group refused (``ErrorKind.GROUP_CHANGED``) is dropped, or rewound."""
        self._commit_began = time.monotonic()
        try:
            return await self._commit_or_rewind(batch, outcomes, epoch, membership)
        finally:
            self._commit_began = None

    async def _commit_or_rewind(
        self, batch: list[InMessage], outcomes: list[OutcomeT], epoch: int, membership: object
    ) -> Offsets | None:
        while True:
            # Before each attempt: a rebalance may have come during the decision, or an abort.
            batch, outcomes = self._still_owned(batch, outcomes, epoch)
            if not batch:
                return None
            messages = [out for outcome in outcomes for out in outcome.messages]
            if self.pack is not None:  # after the revoked inputs left: what is packed is written
                messages = self.pack(messages)
            if self.sealer is not None:  # here, not in the processor: only what is written is chained
                messages = self.sealer.seal(messages)
            try:
                await transact(self.transport, messages, next_offsets(batch), membership, self.policy)
                break
            except Aborted as aborted_by:
                self._outage = aborted_by.outage
                if self.sealer is not None:
                    self.sealer.aborted()
                self.stats.aborted_batches += 1
                for aborted in self.on_abort:
                    aborted()
                if aborted_by.dropped:
                    return await self._drop(batch)
                if aborted_by.renewed:
                    self._renewed()
                if not aborted_by.transient:  # an outage is waited out, however many aborts it takes
                    self._aborts_in_a_row += 1
                if self._aborts_in_a_row > self.policy.max_aborts_in_a_row:
                    raise FatalError(f"{self._aborts_in_a_row} transactions in a row were aborted") from None
                await asyncio.sleep(self.policy.backoff(max(1, self._aborts_in_a_row)))
                if self.transport.can_rewind:
                    return await self._rewind(batch)  # fetched again, from the last committed positions
                # No seek: the same outputs, in a new transaction (the batch is still in hand).
        if self.sealer is not None:
            self.sealer.committed()
        self._outage = False
        self._aborts_in_a_row = 0
        self.stats.batches += 1
        self.stats.records += len(batch)
        for outcome in outcomes:
            self.stats.by_status[outcome.status.value] = self.stats.by_status.get(outcome.status.value, 0) + 1
        for committed in self.on_committed:
            committed(batch, outcomes)
        return None

    async def _rewind(self, batch: list[InMessage]) -> Offsets:
        owned = self.transport.assigned()
        positions = {tp: o for tp, o in first_offsets(batch).items() if tp in owned}
        if self.held is not None:
            self.held.forget(positions)  # read again after the batch
        await self.transport.rewind(positions)
        return positions

    async def _drop(self, batch: list[InMessage]) -> Offsets | None:
        """A batch the group refused is not written again. A transport that seeks reads it again from
        its first offsets where it still owns them; one that does not leaves it to the next
        assignment, which starts every partition at the committed offsets (aiokafka's consumer
        rejoins after a refused commit and is assigned anew)."""
        log.info(
            "the group moved on since the batch was read; its partitions' owner reads it again",
            extra={"dropped": len(batch)},
        )
        if self.transport.can_rewind:
            return await self._rewind(batch)
        return None

    def _renewed(self) -> None:
        now = time.monotonic()
        self._renewals = [t for t in self._renewals if now - t < self.policy.renewals_within] + [now]
        if len(self._renewals) > self.policy.max_renewals:
            raise FatalError(
                f"the producer was fenced {len(self._renewals)} times within {self.policy.renewals_within:.0f} s: "
                "another worker may be running with this worker id"
            )


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class _Deferred(Exception):
    """A held batch could not be decided now; it waits again."""


def next_offsets(batch: Sequence[InMessage]) -> Offsets:
    """The position after each partition's last message of the batch: what a commit records."""
    out: Offsets = {}
    for message in batch:
        position = (message.topic, message.partition)
        if message.offset + 1 > out.get(position, -1):
            out[position] = message.offset + 1
    return out


def first_offsets(batch: Sequence[InMessage]) -> Offsets:
    """Each partition's first offset in the batch: where a rewind starts again."""
    out: Offsets = {}
    for message in batch:
        position = (message.topic, message.partition)
        if position not in out or message.offset < out[position]:
            out[position] = message.offset
    return out
