"""One input message in, the messages to write out: deliveries, a dead letter, one audit event.

No Kafka client here: the runner hands in plain ``InMessage`` values and writes the ``OutMessage``
values it gets back inside one transaction, with the consumed offsets. Every input yields exactly
one audit event, whatever happens, so ``shared + withheld + invalid = input`` can be checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from streams.audit.core.event import Provided, encode_event
from streams.errors import DEPENDENCY_ERRORS, SerdeError
from streams.incidents.core.book import canary_hit_event, canary_incident_id, leak_notice
from streams.messages import (
    H_BASIS,
    H_FIELDS,
    H_ITEMS,
    H_POLICY_VERSION,
    H_PURPOSES,
    H_SOURCE,
    H_TRACE_ID,
    Headers,
    InMessage,
    Outcome,
    OutMessage,
    dead_letter_headers,
    trace_id,
)
from streams.policy.bases import BASES
from streams.policy.canary import LeakCanary
from streams.policy.decision import Decision, Delivery, Status
from streams.policy.engine import DEFAULT_MAX_CLOCK_SKEW, Engine
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.policy.provision import Provision, channel_schema
from streams.policy.pseudonym import SubjectKeys
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import Decoded, GovernedReader, GovernedSchemas, GovernedVersion, SchemaSource
from streams.serde.wire import frame
from streams.stats.core import wire as contributions
from streams.stats.core.contributions import Contributor
from streams.topology import Topology

MAX_VALUE_BYTES = 1_048_576


def customer_key(key: bytes) -> str:
    """An ingest input's key as the customer id it must be (undecodable bytes replaced, so a bad
    key is told by its mismatch with the record): the rights view is asked with this."""
    return key.decode("utf-8", "replace")


class _Read(NamedTuple):  # a tuple: made for every input, at a third of a frozen dataclass's cost
    source: str
    decoded: Decoded
    key: str


@dataclass(frozen=True, slots=True)
class _Unreadable:
    source: str | None
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Judges:
    """What decides the records of one governed version: the engine, and the canary behind it."""

    engine: Engine
    canary: LeakCanary


class Processor:
    def __init__(
        self,
        *,
        topology: Topology,
        policies: PolicySet,
        governed: GovernedSchemas,
        registry: SchemaSource,
        subjects: SubjectKeys,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        is_stopped: Callable[[str, str], bool] = lambda source, key: False,
        max_value_bytes: int = MAX_VALUE_BYTES,
        worker_id: str = "",
        policy: Policy | None = None,
        extra_headers: Sequence[tuple[str, str | bytes | None]] = (),
        replay_id: str | None = None,
        max_clock_skew: dt.timedelta = DEFAULT_MAX_CLOCK_SKEW,
        provide_channels: bool = True,
    ) -> None:
        """``policy`` forces one version for every record (replays); ``extra_headers`` go on every
        output and ``replay_id`` names a replay in every audit event; ``provide_channels`` False
        leaves the insurer's channels out (a replay redoes joint use only)."""
        self.provide_channels = provide_channels
        self.worker_id = worker_id
        self.policy = policy
        self.extra_headers = list(extra_headers)
        self.replay_id = replay_id
        self.topology = topology
        self.policies = policies
        self.reader = GovernedReader(governed, registry)
        self.subjects = subjects
        self.now = now
        self.is_stopped = is_stopped
        self.max_value_bytes = max_value_bytes
        self._channel_writers: dict[tuple[str, str, str], tuple[AvroCodec, int]] = {}
        self._contributors: dict[str, Contributor] = {}  # per policy version
        self._judges = {
            v.name: _Judges(
                Engine(v.classified, policies, max_clock_skew=max_clock_skew), LeakCanary(v.classified, policies)
            )
            for v in governed.versions
        }

    def _read(self, message: InMessage) -> _Read | _Unreadable:
        """The decoded record and its context, or why the input is a dead letter before any decision."""
        source = self.topology.company_of_ingest(message.topic)
        if source is None:
            return _Unreadable(None, "unknown_topic", "the topic is not an ingest topic")
        value = message.value
        if value is not None and len(value) > self.max_value_bytes:
            return _Unreadable(source, "value_too_large", f"the value exceeds {self.max_value_bytes} bytes")
        try:
            decoded = self.reader.decode(value)
        except SerdeError as exc:
            return _Unreadable(source, exc.reason, str(exc))
        if message.key is None:
            return _Unreadable(source, "null_key", "the message has no key; it must be the customer_id")
        key = customer_key(message.key)
        record = decoded.record
        if type(record) is not dict or record.get("customer_id") != key:
            return _Unreadable(source, "key_mismatch", "the message key differs from customer_id")
        return _Read(source, decoded, key)

    def _decide(self, read: _Read, now: dt.datetime, stopped: bool) -> Decision:
        return self._judges[read.decoded.reading.version.name].engine.decide(
            read.decoded.record, read.source, now=now, policy=self.policy, stopped=stopped, trusted=True
        )

    def decision_of(self, message: InMessage) -> Decision | None:
        """The decision alone, without encoding or registering anything (dry runs); None when the
        input is a dead letter before any decision (undecodable, too large, no key, wrong key), or
        when deciding it fails."""
        try:
            read = self._read(message)
            if isinstance(read, _Unreadable):
                return None
            return self._decide(read, self.now(), self.is_stopped(read.source, read.key))
        except DEPENDENCY_ERRORS:
            raise
        except Exception:
            return None

    def process(self, message: InMessage) -> Outcome:
        """Never raises for anything about the record: whatever goes wrong with one input makes it a
        dead letter (``unprocessable``, naming the error's class only, never its message, which may
        quote a value). Only a dependency's failure (registry, cluster) propagates, for a retry."""
        try:
            return self._process(message)
        except DEPENDENCY_ERRORS:
            raise
        except Exception as exc:
            return self._dead(
                message, self.topology.company_of_ingest(message.topic), "unprocessable", type(exc).__name__
            )

    def _process(self, message: InMessage) -> Outcome:
        read = self._read(message)
        if isinstance(read, _Unreadable):
            return self._dead(message, read.source, read.reason, read.detail)
        source, key, decoded = read.source, read.key, read.decoded
        schema_id, version, record = decoded.schema_id, decoded.reading.version, decoded.record
        now = self.now()
        # Asked once: joint use and the channels decide under the same state of the subject's rights.
        stopped = self.is_stopped(source, key)
        decision = self._decide(read, now, stopped)
        if decision.status is Status.INVALID:
            dead = self._dead(message, source, decision.reason.value, decision.detail, decision, schema_id)
            return dead._replace(decision=decision, record=record)
        provided, provisions_withheld = self._provided(read, now, stopped)
        canary = self._judges[version.name].canary
        leaks = tuple(
            (recipient, cls)
            for recipient, _, cls in canary.inspect_all(
                [*decision.deliveries.values(), *provided.values()],
                source=source,
                policy_version=decision.policy_version,
            )
        )
        if leaks:  # fail closed: nothing of this record is sent
            dead = self._dead(
                message, source, "leak_canary", "a delivery held a protected field", decision, schema_id, leaks
            )
            opened = self._incident(message, source, key, decision, leaks, now)
            return dead._replace(messages=dead.messages + opened, leaks=leaks, decision=decision, record=record)
        messages = []
        trace = trace_id(message)
        encoded: dict[int, bytes] = {}  # recipients of one projection share its encoding
        for recipient, delivery in decision.deliveries.items():
            topic = self.topology.deliver(recipient)
            body_out = encoded.get(id(delivery.record))
            if body_out is None:
                body_out = encoded[id(delivery.record)] = version.delivery_codec.encode(delivery.record)
            headers = self._headers(delivery, decision, source, trace)
            delivery_id = self.reader.delivery_id(version, topic)
            messages.append(OutMessage(topic, f"{source}:{key}".encode(), frame(delivery_id, body_out), headers))
        subject = self.subjects.subject(source, key)  # one HMAC per input: the audit's and the cells' key
        if provided:
            messages += self._provisions(message, read, provided, decision, trace, subject, now)
        messages.append(
            self._audit(message, source, decision, schema_id, trace, now=now, subject=subject, provided=provided)
        )
        if decision.status is Status.SHARED and self._counted_policy.statistics.tables:
            messages += self._contribution(subject, record, decision, now)
        return Outcome(
            decision.status,
            decision.reason.value,
            source,
            tuple(messages),
            {r: d.purposes for r, d in decision.deliveries.items()},
            decision.dropped,
            decision=decision,
            record=record,
            provisions=tuple((c, d.basis) for c, d in provided.items()),
            provisions_withheld=provisions_withheld,
        )

    def _provided(
        self, read: _Read, now: dt.datetime, stopped: bool
    ) -> tuple[dict[str, Delivery], tuple[tuple[str, str], ...]]:
        """What each standing channel of the insurer's notice receives of a provider's record (none
        for another company's, or without channels): the same engine decides, channel by channel.
        Also which channels it did not go to, and why (counted for the dashboards)."""
        policy = self.policy or self.policies.in_force(now)
        if not self.provide_channels or policy is None or policy.handling is None:
            return {}, ()
        if read.source != policy.handling.provider:
            return {}, ()
        channels = [c.id for c in policy.handling.channels if BASES[c.basis].continuous]
        if not channels:
            return {}, ()
        engine = self._judges[read.decoded.reading.version.name].engine
        provided = {}
        withheld = []
        for channel in channels:
            decision = engine.provide(
                read.decoded.record, read.source, channel, now=now, policy=self.policy, stopped=stopped, trusted=True
            )
            if decision.status is Status.SHARED:
                provided[channel] = decision.deliveries[channel]
            else:
                withheld.append((channel, decision.reason.value))
        return provided, tuple(withheld)

    def _provisions(
        self,
        message: InMessage,
        read: _Read,
        provided: Mapping[str, Delivery],
        decision: Decision,
        trace: str,
        subject: str,
        now: dt.datetime,
    ) -> list[OutMessage]:
        """Each channel's delivery, with its provision record and supervision log entry where its
        basis needs them, in the input's transaction."""
        policy = self.policy or self.policies.in_force(now) or self.policies.latest
        version = read.decoded.reading.version
        where = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        out = []
        for channel_id, delivery in provided.items():
            channel = policy.channels_by_id[channel_id]
            codec, schema_id = self._channel_writer(version, policy, channel_id)
            headers = self._headers(
                delivery,
                decision,
                read.source,
                trace,
                (H_BASIS, channel.basis.value.encode()),
                (H_FIELDS, ",".join(delivery.fields).encode()),
            )
            body = frame(schema_id, codec.encode(delivery.record))
            out.append(
                OutMessage(self.topology.provide(channel_id), f"{read.source}:{read.key}".encode(), body, headers)
            )
            provision = Provision(
                channel,
                delivery,
                subject=subject,
                subject_key=f"{read.source}:{read.key}",
                source=read.source,
                policy_version=decision.policy_version,
                provided_at=now,
                input_ref=where,
            )
            entry = provision.record()
            if entry is not None:
                out.append(OutMessage(self.topology.provision_records, subject.encode(), orjson.dumps(entry), []))
            supervised = provision.supervision()
            if supervised is not None:
                out.append(OutMessage(self.topology.supervision, channel_id.encode(), orjson.dumps(supervised), []))
        return out

    def _headers(
        self, delivery: Delivery, decision: Decision, source: str, trace: str, *more: tuple[str, bytes]
    ) -> Headers:
        """What a recipient is told of a delivery: its purposes, the governing version, the source,
        the trace and the items (a channel's also its basis and fields), then the run's own."""
        return [
            (H_PURPOSES, ",".join(delivery.purposes).encode()),
            (H_POLICY_VERSION, (decision.policy_version or "").encode()),
            (H_SOURCE, source.encode()),
            (H_TRACE_ID, trace.encode()),
            (H_ITEMS, ",".join(delivery.items).encode()),
            *more,
            *self.extra_headers,
        ]

    def _channel_writer(self, version: GovernedVersion, policy: Policy, channel: str) -> tuple[AvroCodec, int]:
        """The codec and registered schema id of what ``channel`` receives of ``version`` records."""
        cache_key = (version.name, policy.version, channel)
        writer = self._channel_writers.get(cache_key)
        if writer is None:
            raw = channel_schema(version.classified, policy, channel)
            schema_id = self.reader.registry.register(f"{self.topology.provide(channel)}-value", raw)
            writer = self._channel_writers[cache_key] = (AvroCodec(raw), schema_id)
        return writer

    def pack_contributions(self, messages: Sequence[OutMessage]) -> list[OutMessage]:
        """A batch's messages with its statistics contributions in one message (the batch loop's
        ``pack``): one message a transaction on that topic, not one a shared record."""
        return contributions.pack(messages, self.topology.stats_contributions)

    @property
    def _counted_policy(self) -> Policy:
        return self.policy or self.policies.latest

    def _contribution(
        self, subject: str, record: Mapping[str, Any], decision: Decision, now: dt.datetime
    ) -> list[OutMessage]:
        """A shared record's cells in each statistics table (streams.stats counts them), with its
        subject's pseudonym, in the transaction that shares it: a withheld record never counts. The
        batch loop packs a transaction's contributions into one message (``pack_contributions``).

        The event time is the record's ``updated_at``, which its producer sets. The engine shares
        only records timed from the notice's effective date to a few minutes ahead of now (beyond:
        ``future_timestamp``); within that skew a record counts now, so that a producer's clock
        ahead cannot close the open windows early for everyone."""
        updated = record.get("updated_at")
        now_ms = int(now.timestamp() * 1000)
        at_ms = min(updated, now_ms) if type(updated) is int else now_ms
        policy = self._counted_policy
        contributor = self._contributors.get(policy.version)
        if contributor is None:
            contributor = self._contributors[policy.version] = Contributor(policy)
        found = contributor(record, purposes=decision.purposes, at_ms=at_ms)
        if found is None:
            return []
        return [
            OutMessage(self.topology.stats_contributions, subject.encode(), contributions.encode(subject, found), [])
        ]

    def _incident(
        self,
        message: InMessage,
        source: str,
        key: str,
        decision: Decision,
        leaks: tuple[tuple[str, str], ...],
        now: dt.datetime,
    ) -> tuple[OutMessage, ...]:
        """A canary hit opens (or adds to) the day's leak incident, and the source company is told
        which of its customers it concerns, in the transaction that would have sent the deliveries.
        Neither message holds a value of the record."""
        incident_id = canary_incident_id(decision.policy_version, now)
        subject = self.subjects.subject(source, key) if key else None
        where = (message.topic, message.partition, message.offset)
        hit = canary_hit_event(
            incident_id,
            at=now,
            subject=subject,
            source=source,
            policy_version=decision.policy_version,
            input_at=where,
            leaks=leaks,
        )
        notice = leak_notice(
            incident_id,
            company=source,
            subject=subject,
            subject_key=f"{source}:{key}" if key else None,
            recipients=(r for r, _ in leaks),
            classes=(c for _, c in leaks),
            blocked=True,
            input_at=where,
            issued_at=now,
        )
        return (
            OutMessage(self.topology.incidents, incident_id.encode(), hit, list(self.extra_headers)),
            OutMessage(self.topology.notices(source), f"{source}:{key}".encode(), notice, list(self.extra_headers)),
        )

    def _dead(
        self,
        message: InMessage,
        source: str | None,
        reason: str,
        detail: str,
        decision: Decision | None = None,
        schema_id: int | None = None,
        leaks: tuple[tuple[str, str], ...] = (),
    ) -> Outcome:
        headers: Headers = [
            *dead_letter_headers(message, reason, detail),
            *self.extra_headers,
        ]
        out = []
        if source is not None:
            # The raw copy stays inside the source company's boundary: its own dead-letter topic.
            out.append(OutMessage(self.topology.dead_letters(source), message.key, message.value, headers))
        out.append(self._audit(message, source, decision, schema_id, trace_id(message), reason=reason, leaks=leaks))
        dropped = decision.dropped if decision else ()
        return Outcome(Status.INVALID, reason, source, tuple(out), {}, dropped)

    def _audit(
        self,
        message: InMessage,
        source: str | None,
        decision: Decision | None,
        schema_id: int | None,
        trace: str,
        *,
        reason: str | None = None,
        now: dt.datetime | None = None,
        leaks: tuple[tuple[str, str], ...] = (),
        subject: str | None = None,
        provided: Mapping[str, Delivery] | None = None,
    ) -> OutMessage:
        """``subject``: the input's pseudonym when the caller has made it already; ``provided``: what
        channels of the insurer's notice received."""
        if subject is None:
            key = customer_key(message.key) if message.key is not None else ""
            subject = self.subjects.subject(source or "", key) if key else None
        decided = decision is not None and reason is None
        value = encode_event(
            subject=subject,
            subject_key_id=self.subjects.key_id,
            source=source,
            status=decision.status if decision and decided else Status.INVALID,
            reason=reason or (decision.reason.value if decision else None),
            recipients=decision.deliveries if decision and decided else {},
            purposes=decision.purposes if decision else (),
            dropped=decision.dropped if decision else (),
            policy_version=decision.policy_version if decision else None,
            record_policy_version=decision.record_policy_version if decided and decision else None,
            schema_id=schema_id,
            position=message,
            processed_at_ms=int((now or self.now()).timestamp() * 1000),
            trace_id=trace,
            processed_by=self.worker_id,
            leaks=leaks,
            replay_id=self.replay_id,
            provisions={c: Provided(d.basis, d.purposes, d.items, d.fields) for c, d in provided.items()}
            if provided
            else None,
        )
        return OutMessage(
            self.topology.audit,
            (subject or "").encode() or None,
            value,
            [(H_TRACE_ID, trace.encode()), *self.extra_headers],
        )
