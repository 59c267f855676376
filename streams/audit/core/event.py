"""The audit event: the legal record of one input's decision (what was shared with whom, for which
purposes, what was dropped, or why nothing was). One type, written by the ingest processor and read
by every fold (the subject index, breach exposures, incidents, replay comparisons, reports).

Pure: no Kafka, no clock. The JSON is the audit topic's wire form; its schema in the catalog is
generated from ``FIELDS`` below, so the document cannot drift from what is written. A sealed event
also ends in a ``chain`` member (``streams.audit.core.chain``); reading ignores it, the verifier reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from streams.messages import H_TRACE_ID, Decided, OutMessage, Run
from streams.policy.decision import Delivery, DroppedField, Status


class InvalidAuditEvent(ValueError):
    """An audit topic value that is not an audit event; the message names the member and the rule."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """What one recipient received: the notice's items and the purposes it may use them for."""

    purposes: tuple[str, ...]
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Provided:
    """What one channel of the insurer's notice received: under which basis, for which purposes,
    the notice's items and the protected fields (insurer-only, sensitive) by path."""

    basis: str
    purposes: tuple[str, ...]
    items: tuple[str, ...]
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InputPosition:
    """Where the input was read: enough to find it again (a replay, an incident's first input)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Leak:
    """A delivery the leak canary stopped: to whom, and the protected class it would have held."""

    recipient: str
    cls: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One input's decision. ``status`` is the decision's; an input that became a dead letter is
    ``invalid`` with the dead letter's reason, and has no recipients."""

    subject: str | None
    subject_key_id: str | None
    source: str | None
    status: Status
    reason: str | None
    recipients: Mapping[str, Delivered]
    purposes: tuple[str, ...]
    dropped: tuple[DroppedField, ...]
    policy_version: str | None
    record_policy_version: str | None
    schema_id: int | None
    input: InputPosition
    processed_at_ms: int
    trace_id: str
    processed_by: str
    leaks: tuple[Leak, ...] = ()
    replay_id: str | None = None
    provisions: Mapping[str, Provided] = field(default_factory=dict)  # by channel, whatever the status
    request: str | None = None  # a case-by-case provision's request: not a decision of the pipeline

    def deliveries(self) -> Iterator[tuple[str, Delivered]]:
        """The deliveries this event records (none unless shared), by recipient."""
        if self.status is Status.SHARED:
            yield from self.recipients.items()

    def to_json(self) -> bytes:
        return encode_event(
            subject=self.subject,
            subject_key_id=self.subject_key_id,
            source=self.source,
            status=self.status,
            reason=self.reason,
            recipients=self.recipients,
            purposes=self.purposes,
            dropped=self.dropped,
            policy_version=self.policy_version,
            record_policy_version=self.record_policy_version,
            schema_id=self.schema_id,
            position=self.input,
            processed_at_ms=self.processed_at_ms,
            trace_id=self.trace_id,
            processed_by=self.processed_by,
            leaks=tuple((leak.recipient, leak.cls) for leak in self.leaks),
            replay_id=self.replay_id,
            provisions=self.provisions,
            request=self.request,
        )

    @classmethod
    def from_json(cls, value: bytes | str | Mapping[str, Any]) -> AuditEvent:
        """The event of an audit topic value (or of its parsed JSON); ``InvalidAuditEvent`` names the
        member and the rule when it is not one. Members added later are optional."""
        if isinstance(value, Mapping):
            data: Any = value
        else:
            try:
                data = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise InvalidAuditEvent("the value is not JSON") from exc
        if not isinstance(data, Mapping):
            raise InvalidAuditEvent("the value must be a JSON object")
        try:
            status = Status(str(data.get("status")))
        except ValueError:
            raise InvalidAuditEvent("status: must be shared, withheld or invalid") from None
        position = _object(data, "input")
        return cls(
            subject=_optional_text(data, "subject"),
            subject_key_id=_optional_text(data, "subject_key_id"),
            source=_optional_text(data, "source"),
            status=status,
            reason=_optional_text(data, "reason"),
            recipients={
                str(recipient): Delivered(_texts(what, "purposes"), _texts(what, "items"))
                for recipient, what in _object(data, "recipients").items()
                if _is_object(what, f"recipients.{recipient}")
            },
            purposes=_texts(data, "purposes"),
            dropped=tuple(DroppedField(_text(d, "path"), _text(d, "class")) for d in _objects(data, "dropped")),
            policy_version=_optional_text(data, "policy_version"),
            record_policy_version=_optional_text(data, "record_policy_version"),
            schema_id=_optional_int(data, "schema_id"),
            input=InputPosition(
                _text(position, "topic") if position else "",
                _int(position, "partition", -1),
                _int(position, "offset", -1),
                _optional_int(position, "timestamp_ms"),
            ),
            processed_at_ms=_int(data, "processed_at_ms", 0),
            trace_id=_optional_text(data, "trace_id") or "",
            processed_by=_optional_text(data, "processed_by") or "",
            leaks=tuple(Leak(_text(leak, "recipient"), _text(leak, "class")) for leak in _objects(data, "leaks")),
            replay_id=_optional_text(data, "replay_id"),
            provisions={
                str(channel): Provided(
                    _text(what, "basis"), _texts(what, "purposes"), _texts(what, "items"), _texts(what, "fields")
                )
                for channel, what in _object(data, "provisions").items()
                if _is_object(what, f"provisions.{channel}")
            },
            request=_optional_text(data, "request"),
        )


class Received(Protocol):
    """What a recipient got: a ``Delivered``, or the decision's ``Delivery`` itself."""

    @property
    def purposes(self) -> tuple[str, ...]: ...  # pragma: no cover

    @property
    def items(self) -> tuple[str, ...]: ...  # pragma: no cover


class Position(Protocol):
    """Where an input was read: an ``InputPosition``, or the input message itself."""

    @property
    def topic(self) -> str: ...  # pragma: no cover

    @property
    def partition(self) -> int: ...  # pragma: no cover

    @property
    def offset(self) -> int: ...  # pragma: no cover

    @property
    def timestamp_ms(self) -> int | None: ...  # pragma: no cover


def encode_event(
    *,
    subject: str | None,
    subject_key_id: str | None,
    source: str | None,
    status: Status,
    reason: str | None,
    recipients: Mapping[str, Received],
    purposes: Sequence[str],
    dropped: Sequence[DroppedField],
    policy_version: str | None,
    record_policy_version: str | None,
    schema_id: int | None,
    position: Position,
    processed_at_ms: int,
    trace_id: str,
    processed_by: str,
    leaks: Sequence[tuple[str, str]] = (),
    replay_id: str | None = None,
    provisions: Mapping[str, Provided] | None = None,
    request: str | None = None,
) -> bytes:
    """The audit event's wire form, the one place it is laid out. ``AuditEvent.to_json`` uses it; the
    ingest processor calls it with what it already holds (one per input, on the hot path: no event
    object is built just to be serialised), and ``AuditEvent.from_json`` reads the result back."""
    event: dict[str, Any] = {
        "subject": subject,
        "subject_key_id": subject_key_id,
        "source": source,
        "status": status.value,
        "reason": reason,
        "recipients": {r: {"purposes": list(d.purposes), "items": list(d.items)} for r, d in recipients.items()},
        "purposes": list(purposes),
        "dropped": [{"path": d.path, "class": d.cls} for d in dropped],
        "policy_version": policy_version,
        "record_policy_version": record_policy_version,
        "schema_id": schema_id,
        "input": {
            "topic": position.topic,
            "partition": position.partition,
            "offset": position.offset,
            "timestamp_ms": position.timestamp_ms,
        },
        "processed_at_ms": processed_at_ms,
        "trace_id": trace_id,
        "processed_by": processed_by,
    }
    if leaks:  # what the canary caught, so that an incident can be resolved from the audit alone
        event["leaks"] = [{"recipient": recipient, "class": cls} for recipient, cls in leaks]
    if replay_id is not None:
        event["replay_id"] = replay_id
    if provisions:  # only where a channel of the insurer's notice received the record
        event["provisions"] = {
            channel: {"basis": p.basis, "purposes": list(p.purposes), "items": list(p.items), "fields": list(p.fields)}
            for channel, p in provisions.items()
        }
    if request is not None:
        event["request"] = request
    return orjson.dumps(event)


def _is_object(value: Any, where: str) -> bool:
    if not isinstance(value, Mapping):
        raise InvalidAuditEvent(f"{where}: must be an object")
    return True


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    _is_object(value, name)
    return value  # type: ignore[no-any-return]


def _objects(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise InvalidAuditEvent(f"{name}: must be a list of objects")
    return value


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise InvalidAuditEvent(f"{name}: must be a string")
    return value


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidAuditEvent(f"{name}: must be a string or null")
    return value


def _texts(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidAuditEvent(f"{name}: must be a list of strings")
    return tuple(value)


def _int(data: Mapping[str, Any], name: str, default: int) -> int:
    value = _optional_int(data, name)
    return default if value is None else value


def _optional_int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is not None and (type(value) is not int):
        raise InvalidAuditEvent(f"{name}: must be an integer or null")
    return value


# The catalog's audit schema, member by member, in wire order: (name, JSON schema, description).
_STRINGS = {"type": "array", "items": {"type": "string"}}
_TEXT_OR_NULL = {"type": ["string", "null"]}
CHAIN_MEMBERS = (("writer", "string"), ("seq", "integer"), ("prev", "string"))


def _objects_of(**members: str) -> Mapping[str, Any]:
    return {"type": "array", "items": {"type": "object", "properties": {m: {"type": t} for m, t in members.items()}}}


FIELDS: tuple[tuple[str, Mapping[str, Any], str], ...] = (
    ("subject", _TEXT_OR_NULL, "The data subject's keyed pseudonym (HMAC of source and key); null without a key."),
    ("subject_key_id", {"type": ["string", "null"]}, "Which pseudonym key made `subject` (keys rotate)."),
    ("source", {"type": ["string", "null"]}, "The company that produced the input; null for an unknown topic."),
    ("status", {"type": "string", "enum": [s.value for s in Status]}, "The decision: shared, withheld or invalid."),
    ("reason", {"type": ["string", "null"]}, "The reason code of the decision or of the dead letter."),
    (
        "recipients",
        {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"purposes": _STRINGS, "items": _STRINGS},
                "required": ["purposes", "items"],
            },
        },
        "Per recipient, the purposes and the notice's items it received; empty unless shared.",
    ),
    ("purposes", _STRINGS, "The purposes of use the record was shared for."),
    (
        "dropped",
        _objects_of(path="string", **{"class": "string"}),
        "Fields removed from every delivery: path and class, never a value.",
    ),
    ("policy_version", {"type": ["string", "null"]}, "The notice version in force when the input was processed."),
    (
        "record_policy_version",
        _TEXT_OR_NULL,
        "The notice version in force at the record's own time, when shared.",
    ),
    ("schema_id", {"type": ["integer", "null"]}, "The registry id of the schema the input was written with."),
    (
        "input",
        {
            "type": "object",
            "properties": {
                "topic": {"type": "string"},
                "partition": {"type": "integer"},
                "offset": {"type": "integer"},
                "timestamp_ms": {"type": ["integer", "null"]},
            },
        },
        "Where the input was read.",
    ),
    ("processed_at_ms", {"type": "integer"}, "When the worker decided, in ms since the epoch (UTC)."),
    ("trace_id", {"type": "string"}, "The trace id: the input's W3C traceparent trace id, or its position."),
    ("processed_by", {"type": "string"}, "The worker that decided."),
    (
        "leaks",
        _objects_of(recipient="string", **{"class": "string"}),
        "Only when the leak canary stopped the record: the recipients and protected classes it caught.",
    ),
    ("replay_id", {"type": "string"}, "Only on a replay's events: the replay's id."),
    (
        "provisions",
        {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "basis": {"type": "string"},
                    "purposes": _STRINGS,
                    "items": _STRINGS,
                    "fields": _STRINGS,
                },
                "required": ["basis", "purposes", "items", "fields"],
            },
        },
        "Only where channels of the insurer's notice received the record: per channel, the legal basis, "
        "purposes, items and protected fields (by path) it received.",
    ),
    (
        "request",
        {"type": "string"},
        "Only on a case-by-case provision (`jointuse provide`): the request it answered; such an event "
        "records an operator's provision, not a decision of the pipeline.",
    ),
    (
        "chain",
        {"type": "object", "properties": {m: {"type": t} for m, t in CHAIN_MEMBERS}},
        "The tamper-evident chain link the sealer appends: writer, sequence number, previous event's hash.",
    ),
)
_OPTIONAL = {"leaks", "replay_id", "provisions", "request", "chain"}


def json_schema() -> dict[str, Any]:
    """The audit topic's JSON schema (for the catalog), generated from ``FIELDS``."""
    return {
        "type": "object",
        "description": "One decision per input: status, reason, recipients with purposes and items, "
        "classes dropped. Pseudonymous.",
        "properties": {name: {**schema, "description": text} for name, schema, text in FIELDS},
        "required": [name for name, _, _ in FIELDS if name not in _OPTIONAL],
    }


def readable(values: Iterable[bytes | None]) -> Iterator[AuditEvent]:
    """The audit events among audit topic values, in order; a value that is not one is skipped
    (``jointuse audit verify`` reports it), so that one bad value never stops a report."""
    for value in values:
        try:
            yield AuditEvent.from_json(value or b"")
        except InvalidAuditEvent:
            continue


def audit_message(
    run: Run,
    decided: Decided,
    *,
    reason: str | None = None,
    leaks: tuple[tuple[str, str], ...] = (),
    provided: Mapping[str, Delivery] | None = None,
) -> OutMessage:
    """The one audit event of an input, keyed by its subject's pseudonym. ``reason`` makes it a dead
    letter's (status invalid, whatever was decided; ``leaks`` says what the canary caught);
    ``provided`` is what channels of the insurer's notice received."""
    decision = decided.decision
    decided_it = decision is not None and reason is None
    value = encode_event(
        subject=decided.subject,
        subject_key_id=run.subjects.key_id,
        source=decided.source,
        status=decision.status if decision and decided_it else Status.INVALID,
        reason=reason or (decision.reason.value if decision else None),
        recipients=decision.deliveries if decision and decided_it else {},
        purposes=decision.purposes if decision else (),
        dropped=decision.dropped if decision else (),
        policy_version=decision.policy_version if decision else None,
        record_policy_version=decision.record_policy_version if decided_it and decision else None,
        schema_id=decided.schema_id,
        position=decided.message,
        processed_at_ms=int(decided.at.timestamp() * 1000),
        trace_id=decided.trace,
        processed_by=run.worker_id,
        leaks=leaks,
        replay_id=run.replay_id,
        provisions={c: Provided(d.basis, d.purposes, d.items, d.fields) for c, d in provided.items()}
        if provided
        else None,
    )
    return OutMessage(
        run.topology.audit,
        (decided.subject or "").encode() or None,
        value,
        [(H_TRACE_ID, decided.trace.encode()), *run.extra_headers],
    )
