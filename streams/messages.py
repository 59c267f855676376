"""The messages every processor and runtime exchange: what came in, what goes out, what became of
an input; the header names; and the one builder of dead-letter headers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.policy.decision import Decision, Status

H_PURPOSES = "jointuse-purposes"
H_POLICY_VERSION = "jointuse-policy-version"
H_SOURCE = "jointuse-source"
H_TRACE_ID = "jointuse-trace-id"
H_ITEMS = "jointuse-items"
H_REASON = "jointuse-error-reason"
H_DETAIL = "jointuse-error-detail"
H_ORIGINAL_TOPIC = "jointuse-original-topic"
H_ORIGINAL_PARTITION = "jointuse-original-partition"
H_ORIGINAL_OFFSET = "jointuse-original-offset"
H_ORIGINAL_TIMESTAMP = "jointuse-original-timestamp"

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


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None = None  # None: by the key's murmur2 hash, as every client of the deployment


class Written(Protocol):
    """What the batch loop needs of any processor's outcome: the messages to write in the batch's
    transaction, and a status to count. Each processor says the rest in its own type: ``Outcome``
    (ingest, and replays of it), ``ErasureOutcome``, ``ForeignOutcome``."""

    @property
    def status(self) -> Status: ...  # pragma: no cover

    @property
    def messages(self) -> tuple[OutMessage, ...]: ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input of the ingest processor: its status, reason code, the messages to
    write, and who received which purposes."""

    status: Status
    reason: str
    source: str | None
    messages: tuple[OutMessage, ...]
    deliveries: Mapping[str, tuple[str, ...]]  # recipient -> purposes
    dropped: tuple[tuple[str, str], ...]  # (path, class)
    leaks: tuple[tuple[str, str], ...] = ()  # (recipient, class) caught by the leak canary
    decision: Decision | None = None  # for replays and data-quality samples; None when undecodable
    record: Mapping[str, Any] | None = None  # the decoded input (native form), when decodable


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
    for name, value in message.headers:
        if name == H_TRACE_ID and value:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return text[:64]
    # Deterministic, so a re-processed input carries the same trace id as before.
    return hashlib.sha256(f"{message.topic}/{message.partition}/{message.offset}".encode()).hexdigest()[:32]
