"""The messages every processor and runtime exchange: what came in, what goes out, what became of
an input; the header names; the one builder of dead-letter headers; and what the ingest processor
hands each feature to build its own outputs from (``Run``, ``Decided``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from streams.policy.decision import Decision, Status
from streams.policy.pseudonym import SubjectKeys
from streams.topology import Topology

H_PURPOSES = "jointuse-purposes"
H_POLICY_VERSION = "jointuse-policy-version"
H_SOURCE = "jointuse-source"
H_TRACE_ID = "jointuse-trace-id"
H_ITEMS = "jointuse-items"
H_BASIS = "jointuse-basis"  # a channel's legal basis (streams.policy.bases)
H_FIELDS = "jointuse-fields"  # the protected fields a channel received, by path (sensitive ones named)
H_REASON = "jointuse-error-reason"
H_DETAIL = "jointuse-error-detail"
H_ORIGINAL_TOPIC = "jointuse-original-topic"
H_ORIGINAL_PARTITION = "jointuse-original-partition"
H_ORIGINAL_OFFSET = "jointuse-original-offset"
H_ORIGINAL_TIMESTAMP = "jointuse-original-timestamp"
# The one header of a producer's that the pipeline reads: a W3C trace context (its trace id only).
H_TRACEPARENT = "traceparent"
H_REPLAY_ID = "jointuse-replay-id"  # on every output of a replay
OWN_PREFIX = "jointuse-"
# The names the pipeline writes (others are where they are written); a forged one
# on input is counted under its own name when it is one of these, else under ``FORGED_OTHER``: a
# metric label never holds what a producer chose.
OWN_HEADERS = frozenset(
    {
        H_PURPOSES,
        H_POLICY_VERSION,
        H_SOURCE,
        H_TRACE_ID,
        H_ITEMS,
        H_REASON,
        H_DETAIL,
        H_ORIGINAL_TOPIC,
        H_ORIGINAL_PARTITION,
        H_ORIGINAL_OFFSET,
        H_ORIGINAL_TIMESTAMP,
        "jointuse-recipient",
        H_REPLAY_ID,
        "jointuse-rights-request-id",
        "jointuse-provision",
        "jointuse-erasure-reason",
    }
)
FORGED_OTHER = "jointuse-other"
# version 00 exactly: lowercase hex trace id and parent id, flags (https://www.w3.org/TR/trace-context/)
_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_NO_TRACE, _NO_PARENT = b"0" * 32, b"0" * 16

Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class InMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers = field(default_factory=list)

    def __reduce__(self) -> tuple[type[InMessage], tuple[object, ...]]:
        # Sent to the deciding processes a batch at a time: the dataclass's own state functions run
        # in Python for every message, which doubles the cost of sending it.
        return InMessage, (
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.timestamp_ms,
            self.headers,
        )


class OutMessage(NamedTuple):  # a tuple: a few are made for every input, at half a frozen dataclass's cost
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None = None  # None: by the key's murmur2 hash, as every client of the deployment


class Written(Protocol):
    """What the batch loop needs of any processor's outcome: the messages to write in the batch's
    transaction, and a status to count. Each processor says the rest in its own type: ``Outcome``
    (ingest, and replays of it), ``ErasureOutcome``."""

    @property
    def status(self) -> StrEnum: ...  # pragma: no cover  # each outcome type has its own vocabulary

    @property
    def messages(self) -> tuple[OutMessage, ...]: ...  # pragma: no cover


class Outcome(NamedTuple):
    """What became of one input of the ingest processor: its status, reason code, the messages to
    write, and who received which purposes. A tuple, as ``OutMessage``: one is made for every input."""

    status: Status
    reason: str
    source: str | None
    messages: tuple[OutMessage, ...]
    deliveries: Mapping[str, tuple[str, ...]]  # recipient -> purposes
    dropped: tuple[tuple[str, str], ...]  # (path, class)
    leaks: tuple[tuple[str, str], ...] = ()  # (recipient, class) caught by the leak canary
    decision: Decision | None = None  # for replays and data-quality samples; None when undecodable
    record: Mapping[str, Any] | None = None  # the decoded input (native form), when decodable
    provisions: tuple[tuple[str, str], ...] = ()  # (channel, basis) of the insurer's notice that received it
    # (channel, reason) of the standing channels the provider's record did not go to (no consent, ...)
    provisions_withheld: tuple[tuple[str, str], ...] = ()


def customer_key(key: bytes) -> str:
    """An ingest input's key as the customer id it must be (undecodable bytes replaced, so a bad
    key is told by its mismatch with the record): the rights view is asked with this."""
    return key.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Run:
    """What is the same for every input one ingest processor decides: where its outputs go, the keys
    of its subjects' pseudonyms, the worker that writes them, and what a replay adds (its id in every
    audit event, its headers on every output)."""

    topology: Topology
    subjects: SubjectKeys
    worker_id: str = ""
    replay_id: str | None = None
    extra_headers: tuple[tuple[str, bytes], ...] = ()


class Decided(NamedTuple):  # a tuple: one is made for every input
    """One input as the ingest processor decided it: what each feature builds its outputs from."""

    message: InMessage
    source: str | None  # the company whose ingest topic it came from; None for any other topic
    subject: str | None  # the subject's keyed pseudonym; None without a key
    decision: Decision | None  # None for a dead letter before any decision
    schema_id: int | None  # the writer schema it was read with, once decided
    trace: str  # trace_id(message)
    at: dt.datetime  # when it was processed

    @property
    def key(self) -> str:
        """The customer id the input's key names ("" without a key)."""
        return customer_key(self.message.key) if self.message.key is not None else ""


def dead_letter(run: Run, decided: Decided, reason: str, detail: str) -> OutMessage | None:
    """The raw copy of a bad input, with why, in its source company's own dead-letter topic: it stays
    inside that company's boundary. None for an input of no ingest topic, which has no source."""
    if decided.source is None:
        return None
    message = decided.message
    headers = [*dead_letter_headers(message, reason, detail), *run.extra_headers]
    return OutMessage(run.topology.dead_letters(decided.source), message.key, message.value, headers)


def dead_letter_headers(message: InMessage, reason: str, detail: str) -> Headers:
    """The headers of every dead letter: why (a reason code and a detail that never holds a value)
    and where the input came from."""
    return [
        (H_REASON, reason.encode()),
        (H_DETAIL, detail.encode()),
        (H_ORIGINAL_TOPIC, message.topic.encode()),
        (H_ORIGINAL_PARTITION, str(message.partition).encode()),
        (H_ORIGINAL_OFFSET, str(message.offset).encode()),
        (H_ORIGINAL_TIMESTAMP, str(message.timestamp_ms).encode()),
    ]


def trace_id(message: InMessage) -> str:
    """The input's trace id: a producer's W3C ``traceparent`` (version 00, the trace id's 32
    lowercase hex digits and nothing else of it), or else one derived from the input's position.
    Any other header of a producer's never reaches an output: this is the only value that passes,
    and it is hex by construction. Two ``traceparent`` headers are invalid (W3C) and ignored."""
    candidates = [value for name, value in message.headers if name == H_TRACEPARENT]
    if len(candidates) == 1 and candidates[0]:
        raw = candidates[0].encode() if isinstance(candidates[0], str) else candidates[0]
        match = _TRACEPARENT.fullmatch(raw)
        if match is not None and match.group(1) != _NO_TRACE and match.group(2) != _NO_PARENT:
            return match.group(1).decode()
    # Deterministic, so a re-processed input carries the same trace id as before.
    return hashlib.sha256(f"{message.topic}/{message.partition}/{message.offset}".encode()).hexdigest()[:32]


def forged_headers(message: InMessage) -> list[str]:
    """The pipeline's own header names an input carried (ignored: only the pipeline writes them),
    each as the name to count it under (``OWN_HEADERS`` or ``FORGED_OTHER``), never its value."""
    forged = []
    for name, _ in message.headers:
        lowered = name.lower()
        if lowered.startswith(OWN_PREFIX):
            forged.append(lowered if lowered in OWN_HEADERS else FORGED_OTHER)
    return forged
