"""What a rights request leads to, as values: an erasure's tombstones and notices, a bad request's
dead letter, and the outcome the batch loop writes and the rights metrics count.

The processor that reads requests, asks the subject index and holds the clock is
``streams.rights.erasure``; everything it writes is built here, from the request and where its
subject went.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from streams.messages import InMessage, OutMessage, dead_letter_headers
from streams.policy.bases import BASES, LegalBasis
from streams.rights.core.rules import RightsRequest, erasure_notice
from streams.topology import Topology

RIGHTS_DEAD_LETTERS = "rights"  # <prefix>.dlq.rights
H_REQUEST_ID = "jointuse-rights-request-id"


class ErasureStatus(StrEnum):
    """What a rights request led to (its own words: an erasure is not a "share")."""

    ERASED = "erased"  # tombstones and notices written
    NOTHING_WRITTEN = "nothing_written"  # stop, resume (every rights view applies them), superseded, compacted
    INVALID = "invalid"  # a dead letter


@dataclass(frozen=True)
class ErasureOutcome:
    """What became of one rights request. ``reason`` is the action taken (``erase``; ``stop`` and
    ``resume``, which every worker's rights view applies, so nothing is written; ``tombstone``, a
    compacted request) or, for a dead letter (status INVALID), why. An erasure (status SHARED)
    writes a tombstone to each topic in ``tombstone_topics`` and a notice to each recipient."""

    status: ErasureStatus
    reason: str
    source: str | None
    messages: tuple[OutMessage, ...]
    tombstone_topics: tuple[str, ...] = ()

    @property
    def tombstones(self) -> int:
        return len(self.tombstone_topics)


def erasure(
    topology: Topology, request: RightsRequest, reached: Mapping[str, str], issued_at: dt.datetime
) -> ErasureOutcome:
    """An erasure of ``request``'s subject from every recipient in ``reached`` (recipient -> the legal
    basis it received under): a tombstone in its delivery or channel topic and a notice to it."""
    topics = []
    for recipient, basis in sorted(reached.items()):
        if basis == LegalBasis.JOINT_USE:
            topics.append((recipient, topology.deliver(recipient)))
        elif basis in BASES and BASES[LegalBasis(basis)].continuous:
            topics.append((recipient, topology.provide(recipient)))
        # A case-by-case provision has no topic: the request's own procedure erases it.
    key = request.key.encode()
    headers: list[tuple[str, str | bytes | None]] = [(H_REQUEST_ID, request.request_id.encode())]
    out = [OutMessage(topic, key, None, headers) for _, topic in topics]
    for recipient, _ in topics:
        notice = erasure_notice(request, recipient, issued_at=issued_at)
        out.append(OutMessage(topology.notices(recipient), key, notice, headers))
    return ErasureOutcome(ErasureStatus.ERASED, "erase", request.source, tuple(out), tuple(t for _, t in topics))


def rights_dead_letter(topology: Topology, message: InMessage, reason: str, detail: str) -> ErasureOutcome:
    """A bad rights request, copied to the rights dead letters with why."""
    out = OutMessage(
        topology.dead_letters(RIGHTS_DEAD_LETTERS),
        message.key,
        message.value,
        dead_letter_headers(message, reason, detail),
    )
    return ErasureOutcome(ErasureStatus.INVALID, reason, None, (out,))
