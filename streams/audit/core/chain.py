"""The tamper-evident audit: each writer's audit events form one hash chain per audit partition,
and signed checkpoints pin the chains' heads. Pure: values in, values out (hashing and Ed25519
signing are computations; reading and writing topics is elsewhere).

Why a chain per (partition, writer) and not per partition: several workers write to every audit
partition at once (an audit event goes to its subject's partition, whichever worker decided it),
and a writer cannot know which event will precede its own in the partition: the broker decides the
interleaving at append time. One writer's events in one partition are appended in the order it
wrote them (one transactional producer; a fenced zombie's writes are aborted), so each writer can
chain its own. Removing, altering, reordering or inserting any event still breaks a chain.

- ``AuditChain`` is a writer's state: the head (sequence number and hash) of its chain in each
  partition, committed and pending. The batch loop seals a batch's audit events just before its
  transaction, commits the heads when it commits and forgets the pending ones when it aborts.
- An event is sealed by adding ``"chain": {"writer", "seq", "prev"}`` as the last member of its JSON
  object; its hash is SHA-256 over the exact bytes written, which the verifier reads back.
- ``ChainVerifier`` reads events in offset order and returns the first violation as a value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64  # the "previous hash" of a chain's first event
CHAIN_MEMBER = b',"chain":'


class Link(NamedTuple):  # tuples: one of each is made for every audit event
    writer: str
    seq: int  # 0 for a writer's first event in a partition
    prev: str  # hex SHA-256 of the writer's previous event there, GENESIS for the first


class Head(NamedTuple):
    seq: int
    digest: str


START = Head(-1, GENESIS)


def digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def seal(value: bytes, link: Link) -> bytes:
    """``value`` (a JSON object, as the ingest processor writes it) with its link as last member."""
    if not value.endswith(b"}") or len(value) < 2:
        raise ValueError("an audit event must be a JSON object")
    member = orjson.dumps({"writer": link.writer, "seq": link.seq, "prev": link.prev})
    return value[:-1] + (CHAIN_MEMBER[1:] if value == b"{}" else CHAIN_MEMBER) + member + b"}"


def link_of(value: bytes | None) -> Link | None:
    """The link of a sealed event; None when it has none or is not a JSON object."""
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    chain = event.get("chain") if isinstance(event, dict) else None
    if not isinstance(chain, dict):
        return None
    writer, seq, prev = chain.get("writer"), chain.get("seq"), chain.get("prev")
    if not isinstance(writer, str) or type(seq) is not int or seq < 0 or not isinstance(prev, str):
        return None
    return Link(writer, seq, prev)


class AuditChain:
    """One writer's chains, one per audit partition."""

    def __init__(self, writer: str, heads: Mapping[int, Head] | None = None) -> None:
        self.writer = writer
        self.committed: dict[int, Head] = dict(heads or {})
        self.pending: dict[int, Head] = {}
        self.sealed = 0  # events sealed and committed, for checkpoints by count

    def head(self, partition: int) -> Head:
        return self.pending.get(partition) or self.committed.get(partition) or START

    def seal(self, partition: int, value: bytes) -> bytes:
        head = self.head(partition)
        sealed = seal(value, Link(self.writer, head.seq + 1, head.digest))
        self.pending[partition] = Head(head.seq + 1, digest(sealed))
        return sealed

    def commit(self) -> None:
        """The batch's transaction committed: its events are part of the chains."""
        self.sealed += sum(head.seq - self.committed.get(p, START).seq for p, head in self.pending.items())
        self.committed.update(self.pending)
        self.pending.clear()

    def rollback(self) -> None:
        """The transaction aborted: nothing it sealed was written."""
        self.pending.clear()

    def recover(self, partition: int, last: bytes | None) -> None:
        """After a restart: the head is the writer's last committed event in ``partition``."""
        link = link_of(last)
        if link is None or link.writer != self.writer:
            raise ValueError("not an event of this writer")
        self.committed[partition] = Head(link.seq, digest(last or b""))


@dataclass(frozen=True)
class Checkpoint:
    """The head of one writer's chain in one partition at a moment, signed by the deployment key."""

    writer: str
    partition: int
    seq: int
    head: str
    at_ms: int

    def payload(self) -> bytes:
        return orjson.dumps(
            {
                "writer": self.writer,
                "partition": self.partition,
                "seq": self.seq,
                "head": self.head,
                "at_ms": self.at_ms,
            },
            option=orjson.OPT_SORT_KEYS,
        )


def sign_checkpoint(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> bytes:
    body = checkpoint.payload()
    return orjson.dumps({"checkpoint": orjson.Fragment(body), "signature": key.sign(body).hex()})


def read_checkpoint(value: bytes | None, key: Ed25519PublicKey) -> Checkpoint | None:
    """The checkpoint if its signature holds under ``key``; None otherwise (forged or damaged)."""
    try:
        record = orjson.loads(value or b"")
        body = orjson.dumps(record["checkpoint"], option=orjson.OPT_SORT_KEYS)
        key.verify(bytes.fromhex(record["signature"]), body)
        fields = record["checkpoint"]
        return Checkpoint(
            str(fields["writer"]),
            int(fields["partition"]),
            int(fields["seq"]),
            str(fields["head"]),
            int(fields["at_ms"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidSignature):
        return None


class Rule(StrEnum):
    UNCHAINED = "unchained"  # an event without a valid link: inserted, or altered in its link
    ALTERED = "altered"  # the next event of the writer chains to a different hash
    REMOVED = "removed"  # the writer's sequence skips numbers here (removed, or moved later)
    REORDERED = "reordered"  # the writer's sequence goes back or repeats (moved earlier, or inserted)
    TRUNCATED = "truncated"  # a signed checkpoint names an event the topic no longer has
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # a signed checkpoint's head differs from the chain's
    BAD_CHECKPOINT = "bad_checkpoint"  # a checkpoint whose signature does not hold


@dataclass(frozen=True)
class Violation:
    partition: int
    offset: int
    rule: Rule
    detail: str  # names the writer and sequence numbers, never an event's content

    def __str__(self) -> str:
        return f"partition {self.partition} offset {self.offset}: {self.rule.value} ({self.detail})"


@dataclass
class _Seen:
    first_seq: int
    seq: int
    digest: str
    offset: int


class ChainVerifier:
    """Checks the chains of an audit topic read in offset order, partition by partition, against
    the signed checkpoints (given first, so no event needs keeping).

    ``anchored``: the first event of each writer may start past sequence 0 (a time-bounded check,
    or a topic whose oldest events retention removed); otherwise every chain must start at 0.
    ``checkpoints``: as read, ``None`` for a record whose signature does not hold."""

    def __init__(self, checkpoints: Iterable[Checkpoint | None] = (), *, anchored: bool = False) -> None:
        self.anchored = anchored
        self.violations: list[Violation] = []
        self.events = 0
        self._chains: dict[tuple[int, str], _Seen] = {}
        self._checkpoints: dict[tuple[int, str, int], Checkpoint] = {}
        for checkpoint in checkpoints:
            if checkpoint is None:
                self._found(-1, -1, Rule.BAD_CHECKPOINT, "a checkpoint's signature does not hold")
            else:
                self._checkpoints[(checkpoint.partition, checkpoint.writer, checkpoint.seq)] = checkpoint
        self.checkpoints_matched = 0

    def feed(self, partition: int, offset: int, value: bytes | None) -> None:
        self.events += 1
        link = link_of(value)
        if link is None:
            self._found(partition, offset, Rule.UNCHAINED, "no valid chain link")
            return
        key = (partition, link.writer)
        seen = self._chains.get(key)
        now = digest(value or b"")
        if seen is None:
            if link.seq != 0 and not self.anchored:
                self._found(partition, offset, Rule.REMOVED, f"writer {link.writer} starts at seq {link.seq}, not 0")
            elif link.seq == 0 and link.prev != GENESIS:
                self._found(partition, offset, Rule.ALTERED, f"writer {link.writer} seq 0 does not start a chain")
            self._chains[key] = _Seen(link.seq, link.seq, now, offset)
        elif link.seq <= seen.seq:
            self._found(
                partition,
                offset,
                Rule.REORDERED,
                f"writer {link.writer} seq {link.seq} after seq {seen.seq} (moved, or inserted)",
            )
            return  # the chain continues from the event before
        else:
            if link.seq > seen.seq + 1:
                self._found(
                    partition,
                    offset,
                    Rule.REMOVED,
                    f"writer {link.writer} seq {seen.seq + 1}..{link.seq - 1} missing here (removed, or moved later)",
                )
            elif link.prev != seen.digest:
                self._found(
                    partition,
                    seen.offset,
                    Rule.ALTERED,
                    f"writer {link.writer} seq {seen.seq} is not what seq {link.seq} chains to",
                )
            seen.seq, seen.digest, seen.offset = link.seq, now, offset
        checkpoint = self._checkpoints.get((partition, link.writer, link.seq))
        if checkpoint is not None:
            self.checkpoints_matched += 1
            if checkpoint.head != now:
                where = f"writer {link.writer} seq {link.seq}"
                self._found(partition, offset, Rule.CHECKPOINT_MISMATCH, f"{where} differs from its checkpoint")

    def finish(self, *, until_ms: int | None = None) -> Violation | None:
        """After the last event: every checkpoint (up to ``until_ms``) must name an event that was
        read. Returns the first violation."""
        for (partition, writer, seq), checkpoint in self._checkpoints.items():
            if until_ms is not None and checkpoint.at_ms > until_ms:
                continue
            seen = self._chains.get((partition, writer))
            if seen is not None and seq < seen.first_seq:
                continue  # before a time-bounded check's first event of this writer
            if seen is None or seq > seen.seq:
                where = f"writer {writer} seq {seq}"
                last = seen.offset if seen else -1
                self._found(partition, last, Rule.TRUNCATED, f"{where} is checkpointed but not in the topic")
        return self.first

    @property
    def first(self) -> Violation | None:
        """The earliest violation by (partition, offset)."""
        return min(self.violations, key=lambda v: (v.partition, v.offset)) if self.violations else None

    def _found(self, partition: int, offset: int, rule: Rule, detail: str) -> None:
        self.violations.append(Violation(partition, offset, rule, detail))
