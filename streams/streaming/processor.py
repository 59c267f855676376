"""One input message in, the messages to write out: deliveries, a dead letter, one audit event.

No Kafka client here: the runner hands in plain ``InMessage`` values and writes the ``OutMessage``
values it gets back inside one transaction, with the consumed offsets. Every input yields exactly
one audit event, whatever happens, so ``shared + withheld + invalid = input`` can be checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from streams.errors import SerdeError
from streams.policy.canary import LeakCanary
from streams.policy.classification import ClassifiedSchema, classify, delivery_schema
from streams.policy.decision import Decision, Status
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.serde.avro_codec import AvroCodec
from streams.serde.wire import frame, unframe
from streams.topology import Topology

MAX_VALUE_BYTES = 1_048_576

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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input: its status, reason code, and the messages to write."""

    status: Status
    reason: str
    source: str | None
    messages: tuple[OutMessage, ...]
    deliveries: Mapping[str, tuple[str, ...]]  # recipient -> purposes
    dropped: tuple[tuple[str, str], ...]  # (path, class)
    leaks: tuple[tuple[str, str], ...] = ()  # (recipient, class) caught by the leak canary
    decision: Decision | None = None  # for replays and data-quality samples; None when undecodable
    record: Mapping[str, Any] | None = None  # the decoded input (native form), when decodable


class SchemaSource(Protocol):
    """What the processor needs from a schema registry (``streams.serde.registry.Registry`` fits)."""

    def codec(self, schema_id: int) -> AvroCodec: ...  # pragma: no cover
    def schema(self, schema_id: int) -> Mapping[str, Any]: ...  # pragma: no cover
    def register(self, subject: str, schema: Mapping[str, Any]) -> int: ...  # pragma: no cover


@dataclass
class _WriterVersion:
    engine: Engine
    canary: LeakCanary
    codec: AvroCodec
    delivery_codec: AvroCodec
    delivery_raw: dict[str, Any]
    delivery_ids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Read:
    source: str
    schema_id: int
    version: _WriterVersion
    record: dict[str, Any]
    key: str


@dataclass(frozen=True, slots=True)
class _Unreadable:
    source: str | None
    reason: str
    detail: str


def subject_hash(source: str, key: str) -> str:
    """The pseudonymous id of a subject in audit events: no raw customer id leaves in the audit."""
    return hashlib.sha256(f"{source}\x00{key}".encode()).hexdigest()[:32]


class Processor:
    def __init__(
        self,
        *,
        topology: Topology,
        policies: PolicySet,
        registry: SchemaSource,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        is_stopped: Callable[[str, str], bool] = lambda source, key: False,
        max_value_bytes: int = MAX_VALUE_BYTES,
        worker_id: str = "",
        policy: Policy | None = None,
        extra_headers: Sequence[tuple[str, str | bytes | None]] = (),
        audit_extra: Mapping[str, Any] | None = None,
    ) -> None:
        """``policy`` forces one version for every record (replays); ``extra_headers`` go on every
        output and ``audit_extra`` into every audit event (a replay's id)."""
        self.worker_id = worker_id
        self.policy = policy
        self.extra_headers = list(extra_headers)
        self.audit_extra = dict(audit_extra or {})
        self.topology = topology
        self.policies = policies
        self.registry = registry
        self.now = now
        self.is_stopped = is_stopped
        self.max_value_bytes = max_value_bytes
        self._versions: dict[int, _WriterVersion] = {}

    def _version(self, schema_id: int) -> _WriterVersion:
        version = self._versions.get(schema_id)
        if version is None:
            codec = self.registry.codec(schema_id)  # an unknown id fails here, as a SerdeError
            raw = self.registry.schema(schema_id)
            try:
                classified: ClassifiedSchema = classify(raw)
            except Exception as exc:  # a schema that is not a record of ours
                raise SerdeError("the writer schema is not a customer record", reason="foreign_schema") from exc
            delivery = delivery_schema(classified)
            version = _WriterVersion(
                Engine(classified, self.policies), LeakCanary(classified), codec, AvroCodec(delivery), delivery
            )
            self._versions[schema_id] = version
        return version

    def _delivery_id(self, version: _WriterVersion, topic: str) -> int:
        schema_id = version.delivery_ids.get(topic)
        if schema_id is None:
            schema_id = self.registry.register(f"{topic}-value", version.delivery_raw)
            version.delivery_ids[topic] = schema_id
        return schema_id

    def _read(self, message: InMessage) -> _Read | _Unreadable:
        """The decoded record and its context, or why the input is a dead letter before any decision."""
        source = self.topology.company_of_ingest(message.topic)
        if source is None:
            return _Unreadable(None, "unknown_topic", "the topic is not an ingest topic")
        value = message.value
        if value is not None and len(value) > self.max_value_bytes:
            return _Unreadable(source, "value_too_large", f"the value exceeds {self.max_value_bytes} bytes")
        try:
            schema_id, body = unframe(value)
            version = self._version(schema_id)
            record = version.codec.decode(body)
        except SerdeError as exc:
            return _Unreadable(source, exc.reason, str(exc))
        if message.key is None:
            return _Unreadable(source, "null_key", "the message has no key; it must be the customer_id")
        key = message.key.decode("utf-8", "replace")
        if type(record) is not dict or record.get("customer_id") != key:
            return _Unreadable(source, "key_mismatch", "the message key differs from customer_id")
        return _Read(source, schema_id, version, record, key)

    def _decide(self, read: _Read) -> Decision:
        return read.version.engine.decide(
            read.record,
            read.source,
            now=self.now(),
            policy=self.policy,
            stopped=self.is_stopped(read.source, read.key),
            trusted=True,
        )

    def decision_of(self, message: InMessage) -> Decision | None:
        """The decision alone, without encoding or registering anything (dry runs); None when the
        input is a dead letter before any decision (undecodable, too large, no key, wrong key)."""
        read = self._read(message)
        return None if isinstance(read, _Unreadable) else self._decide(read)

    def process(self, message: InMessage) -> Outcome:
        read = self._read(message)
        if isinstance(read, _Unreadable):
            return self._dead(message, read.source, read.reason, read.detail)
        source, schema_id, version, record, key = read.source, read.schema_id, read.version, read.record, read.key
        decision = self._decide(read)
        if decision.status is Status.INVALID:
            dead = self._dead(message, source, decision.reason.value, decision.detail, decision, schema_id)
            return replace(dead, decision=decision, record=record)
        leaks = tuple(
            (recipient, cls)
            for recipient, delivery in decision.deliveries.items()
            for _, cls in version.canary.inspect(delivery.record)
        )
        if leaks:  # fail closed: nothing of this record is sent
            dead = self._dead(message, source, "leak_canary", "a delivery held a protected field", decision, schema_id)
            return replace(dead, leaks=leaks, decision=decision, record=record)
        messages = []
        trace_id = _trace_id(message)
        for recipient, delivery in decision.deliveries.items():
            topic = self.topology.deliver(recipient)
            body_out = version.delivery_codec.encode(delivery.record)
            headers: Headers = [
                (H_PURPOSES, ",".join(delivery.purposes).encode()),
                (H_POLICY_VERSION, (decision.policy_version or "").encode()),
                (H_SOURCE, source.encode()),
                (H_TRACE_ID, trace_id.encode()),
                (H_ITEMS, ",".join(delivery.items).encode()),
                *self.extra_headers,
            ]
            messages.append(
                OutMessage(
                    topic, f"{source}:{key}".encode(), frame(self._delivery_id(version, topic), body_out), headers
                )
            )
        messages.append(self._audit(message, source, decision, schema_id, trace_id))
        return Outcome(
            decision.status,
            decision.reason.value,
            source,
            tuple(messages),
            {r: d.purposes for r, d in decision.deliveries.items()},
            tuple((d.path, d.cls) for d in decision.dropped),
            decision=decision,
            record=record,
        )

    def _dead(
        self,
        message: InMessage,
        source: str | None,
        reason: str,
        detail: str,
        decision: Decision | None = None,
        schema_id: int | None = None,
    ) -> Outcome:
        headers: Headers = [
            (H_REASON, reason.encode()),
            (H_DETAIL, detail.encode()),
            (H_ORIGINAL_TOPIC, message.topic.encode()),
            (H_ORIGINAL_PARTITION, str(message.partition).encode()),
            (H_ORIGINAL_OFFSET, str(message.offset).encode()),
            (H_ORIGINAL_TIMESTAMP, str(message.timestamp_ms).encode()),
            *self.extra_headers,
        ]
        out = []
        if source is not None:
            # The raw copy stays inside the source company's boundary: its own dead-letter topic.
            out.append(OutMessage(self.topology.dead_letters(source), message.key, message.value, headers))
        out.append(self._audit(message, source, decision, schema_id, _trace_id(message), reason=reason))
        dropped = tuple((d.path, d.cls) for d in decision.dropped) if decision else ()
        return Outcome(Status.INVALID, reason, source, tuple(out), {}, dropped)

    def _audit(
        self,
        message: InMessage,
        source: str | None,
        decision: Decision | None,
        schema_id: int | None,
        trace_id: str,
        *,
        reason: str | None = None,
    ) -> OutMessage:
        key = message.key.decode("utf-8", "replace") if message.key is not None else ""
        subject = subject_hash(source or "", key) if key else None
        event: dict[str, Any] = {
            "subject": subject,
            "source": source,
            "status": decision.status.value if decision and reason is None else Status.INVALID.value,
            "reason": reason or (decision.reason.value if decision else None),
            "recipients": {
                r: {"purposes": list(d.purposes), "items": list(d.items)}
                for r, d in (decision.deliveries.items() if decision and reason is None else ())
            },
            "purposes": list(decision.purposes) if decision else [],
            "dropped": [{"path": d.path, "class": d.cls} for d in (decision.dropped if decision else ())],
            "policy_version": decision.policy_version if decision else None,
            "schema_id": schema_id,
            "input": {
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "timestamp_ms": message.timestamp_ms,
            },
            "processed_at_ms": int(self.now().timestamp() * 1000),
            "trace_id": trace_id,
            "processed_by": self.worker_id,
            **self.audit_extra,
        }
        return OutMessage(
            self.topology.audit,
            (subject or "").encode() or None,
            orjson.dumps(event),  # the audit's JSON is on the hot path: orjson is several times faster
            [(H_TRACE_ID, trace_id.encode()), *self.extra_headers],
        )


def _trace_id(message: InMessage) -> str:
    for name, value in message.headers:
        if name == H_TRACE_ID and value:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return text[:64]
    # Deterministic, so a re-processed input carries the same trace id as before.
    return hashlib.sha256(f"{message.topic}/{message.partition}/{message.offset}".encode()).hexdigest()[:32]
