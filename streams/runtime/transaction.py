"""One batch's transaction and the error policy that decides what each error of a client does to it.

``transact`` runs the steps (begin, write, send the offsets, commit), each retried while its errors
are retriable, up to the policy's caps; a commit, once asked for, until the cluster decides
(docs/decisions/ambiguous-commits.md). A transaction that cannot go on is aborted (or its producer
replaced) and ``Aborted`` says why, for the loop to do the batch again or drop it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from streams.errors import FatalError
from streams.messages import OutMessage

log = logging.getLogger("jointuse.worker")

Offsets = dict[tuple[str, int], int]  # (topic, partition) -> the next offset to read


class ErrorKind(Enum):
    RETRIABLE = "retriable"
    ABORTABLE = "abortable"
    # The producer cannot go on, but a new one can: aiokafka reports a transaction the coordinator
    # aborted after its timeout (an outage longer than it) as fenced. The batch is done again with a
    # new producer of the same transactional id; zombies are fenced by the group's generation, not
    # by this id. Renewed too often, it is another instance with this id: fatal.
    RENEW = "renew"
    # The group refused the batch's offsets: it has moved past the membership the batch was read
    # under (a rebalance, or this worker's session expired while it was paused). The transaction is
    # aborted and the batch is not written again: its partitions' owner now (maybe this worker, from
    # the committed offsets) reads it again. Writing it again under the new membership would be
    # accepted, and its inputs read again from the committed offsets too: twice.
    GROUP_CHANGED = "group_changed"
    FATAL = "fatal"


class Writer(Protocol):
    """The write side of a client library: the steps of a transaction."""

    transactional: bool  # False: at least once (outputs flushed, then the offsets committed)

    async def begin(self) -> None: ...  # pragma: no cover
    async def write(self, messages: Sequence[OutMessage]) -> None: ...  # pragma: no cover
    # ``membership``: what the transport's ``membership()`` said when the batch was fetched.
    async def send_offsets(self, offsets: Offsets, membership: object) -> None: ...  # pragma: no cover
    async def commit(self) -> None: ...  # pragma: no cover
    async def abort(self) -> None: ...  # pragma: no cover
    async def renew(self) -> None: ...  # pragma: no cover  # replaces the producer (ErrorKind.RENEW)
    def classify(self, error: BaseException) -> ErrorKind: ...  # pragma: no cover


@dataclass(frozen=True)
class ErrorPolicy:
    """Caps of the error policy."""

    retry_attempts: int = 6
    retry_deadline_seconds: float = 60.0
    backoff_first_seconds: float = 0.2
    backoff_max_seconds: float = 5.0
    max_aborts_in_a_row: int = 10  # aborts for errors that are not an outage (see ``_step``)
    outage_log_every: int = 12  # attempts between two warnings while a dependency is down (~1 min)
    renewals_within: float = 300.0  # a producer renewed more often than ``max_renewals`` in this many s
    max_renewals: int = 3  # ... is fenced by another instance with its transactional id: fatal
    # A transaction that has not committed after this long is stalled (a commit takes well under a
    # second): the cluster does not acknowledge writes, and readiness says so.
    stalled_after_seconds: float = 10.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.backoff_first_seconds * 2.0 ** (attempt - 1), self.backoff_max_seconds))


async def transact(
    transport: Writer,
    messages: Sequence[OutMessage],
    offsets: Offsets,
    membership: object,
    policy: ErrorPolicy,
) -> None:
    """One attempt at a batch's transaction (at least once: write, then commit the offsets). Each
    step is retried while its errors are retriable, up to the policy's caps. Raises ``_Aborted``
    after aborting the transaction (or replacing a producer that cannot abort it), ``FatalError``
    when the writer cannot go on."""
    try:
        if transport.transactional:
            await _step(transport, transport.begin, policy)
            await _step(transport, lambda: transport.write(messages), policy, again=False)
            await _step(transport, lambda: transport.send_offsets(offsets, membership), policy)
            # Once asked for, a commit is the cluster's to decide: given up on, its outcome would be
            # unknown (docs/decisions/ambiguous-commits.md), so it is tried again while it can be.
            await _step(transport, transport.commit, policy, until_decided=True)
        else:
            await _step(transport, lambda: transport.write(messages), policy, again=False)
            await _step(transport, lambda: transport.send_offsets(offsets, membership), policy)
    except _Abortable as exc:
        log.warning("the batch's transaction is aborted", extra={"error": str(exc.__cause__)})
        renewed = False
        if transport.transactional:
            renewed = await _abort(transport, policy)
        raise Aborted(str(exc.__cause__), transient=exc.transient, renewed=renewed, outage=exc.transient) from exc
    except _GroupChanged as exc:
        log.warning("the group refused the batch's offsets; it is aborted", extra={"error": str(exc.__cause__)})
        renewed = await _abort(transport, policy) if transport.transactional else False
        raise Aborted(str(exc.__cause__), transient=True, renewed=renewed, dropped=True) from exc
    except _Renew as exc:
        log.warning("the producer is replaced; the batch is done again", extra={"error": str(exc.__cause__)})
        await _renew(transport)
        raise Aborted(str(exc.__cause__), transient=True, renewed=True) from exc


async def _abort(transport: Writer, policy: ErrorPolicy) -> bool:
    """Aborts the open transaction, retrying while the broker is away; a producer that cannot abort
    is replaced (a new one aborts what its predecessor left open). Whether it was replaced."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await transport.abort()
            return False
        except Exception as exc:
            if transport.classify(exc) is ErrorKind.RETRIABLE:
                if attempt == 1 or attempt % policy.outage_log_every == 0:
                    log.warning("the abort waits for the broker", extra={"error": str(exc)})
                await asyncio.sleep(policy.backoff(attempt))
                continue
            log.warning("the transaction could not be aborted; the producer is replaced", extra={"error": str(exc)})
            await _renew(transport)
            return True


async def _renew(transport: Writer) -> None:
    try:
        await transport.renew()
    except Exception as exc:
        raise FatalError(f"the producer could not be replaced ({exc})") from exc


async def _step(
    transport: Writer,
    step: Callable[[], object],
    policy: ErrorPolicy,
    *,
    again: bool = True,
    until_decided: bool = False,
) -> None:
    """One step of a transaction, retried while its errors are retriable, up to the caps (or, for a
    step that must be ``until_decided``, without them: an outage is waited out). A step that is not
    safe to do ``again`` (a write that failed part way would write its first messages twice in the
    same transaction) aborts instead, as an outage."""
    deadline = time.monotonic() + policy.retry_deadline_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            result = step()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
            return
        except Exception as exc:
            kind = transport.classify(exc)
            if kind is ErrorKind.FATAL:
                raise FatalError(f"a fatal Kafka error ({exc})") from exc
            if kind is ErrorKind.RENEW:
                raise _Renew from exc
            if kind is ErrorKind.GROUP_CHANGED:
                raise _GroupChanged from exc
            if kind is ErrorKind.ABORTABLE:
                raise _Abortable(transient=False) from exc
            capped = attempt >= policy.retry_attempts or time.monotonic() > deadline
            if not again or (capped and not until_decided):
                raise _Abortable(transient=True) from exc  # still retriable: an outage, not the batch
            if attempt == 1 or attempt % policy.outage_log_every == 0:
                log.warning("a retriable Kafka error; retrying", extra={"error": str(exc), "attempt": attempt})
            await asyncio.sleep(policy.backoff(attempt))


class Aborted(Exception):
    """A batch's transaction was aborted (nothing of it is visible); the batch can be done again.
    ``transient``: by an outage, a rebalance or a replaced producer (not counted towards the aborts
    in a row); ``renewed``: the
    producer was replaced; ``dropped``: the group refused it, so it is not written again; ``outage``:
    the cluster did not accept it (the loop is not ``writing``)."""

    def __init__(
        self, message: str, *, transient: bool, renewed: bool, dropped: bool = False, outage: bool = False
    ) -> None:
        super().__init__(message)
        self.outage = outage
        self.transient = transient
        self.renewed = renewed
        self.dropped = dropped


class _Abortable(Exception):
    def __init__(self, *, transient: bool) -> None:
        super().__init__()
        self.transient = transient


class _Renew(Exception):
    pass


class _GroupChanged(Exception):
    pass
