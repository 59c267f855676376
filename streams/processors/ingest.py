"""One input message in, the messages to write out: deliveries, a dead letter, one audit event.

No Kafka client here: the runner hands in plain ``InMessage`` values and writes the ``OutMessage``
values it gets back inside one transaction, with the consumed offsets. Every input yields exactly
one audit event, whatever happens, so ``shared + withheld + invalid = input`` can be checked.

The processor reads, decides, checks with the leak canary and encodes the deliveries; what else an
input leaves behind, each feature builds in its own core from the decided input (``Decided``): the
audit event, a dead letter, a canary hit's incident, a channel's provision record, a statistics
contribution.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.audit.core.event import audit_message
from streams.errors import DEPENDENCY_ERRORS, SerdeError
from streams.incidents.core.book import canary_hit
from streams.messages import (
    H_BASIS,
    H_FIELDS,
    H_ITEMS,
    H_POLICY_VERSION,
    H_PURPOSES,
    H_SOURCE,
    H_TRACE_ID,
    Decided,
    Headers,
    InMessage,
    Outcome,
    OutMessage,
    Run,
    customer_key,
    dead_letter,
    trace_id,
)
from streams.policy.bases import BASES
from streams.policy.canary import LeakCanary
from streams.policy.decision import Decision, Delivery, Status
from streams.policy.engine import DEFAULT_MAX_CLOCK_SKEW, Engine
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.policy.provision import channel_schema, provision_messages
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import Decoded, GovernedReader, GovernedSchemas, GovernedVersion, SchemaSource
from streams.serde.wire import frame
from streams.stats.core.contributions import Contributions
from streams.stats.core.wire import pack

MAX_VALUE_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Deciding:
    """What decides every input: the notice's versions (``policy`` forces one for every record, as a
    replay does), the clock skew a record's time may have, and whether the insurer's standing
    channels are decided too (a replay redoes joint use only)."""

    policies: PolicySet
    policy: Policy | None = None
    max_clock_skew: dt.timedelta = DEFAULT_MAX_CLOCK_SKEW
    provide_channels: bool = True


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
        run: Run,
        deciding: Deciding,
        governed: GovernedSchemas,
        registry: SchemaSource,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        is_stopped: Callable[[str, str], bool] = lambda source, key: False,
    ) -> None:
        self.run = run
        self.deciding = deciding
        self.reader = GovernedReader(governed, registry)
        self.now = now
        self.is_stopped = is_stopped
        self.contributions = Contributions(run.topology.stats_contributions)
        self._channel_writers: dict[tuple[str, str, str], tuple[AvroCodec, int]] = {}
        self._judges = {
            v.name: _Judges(
                Engine(v.classified, deciding.policies, max_clock_skew=deciding.max_clock_skew),
                LeakCanary(v.classified, deciding.policies),
            )
            for v in governed.versions
        }

    def _read(self, message: InMessage) -> _Read | _Unreadable:
        """The decoded record and its context, or why the input is a dead letter before any decision."""
        source = self.run.topology.company_of_ingest(message.topic)
        if source is None:
            return _Unreadable(None, "unknown_topic", "the topic is not an ingest topic")
        value = message.value
        if value is not None and len(value) > MAX_VALUE_BYTES:
            return _Unreadable(source, "value_too_large", f"the value exceeds {MAX_VALUE_BYTES} bytes")
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
            read.decoded.record, read.source, now=now, policy=self.deciding.policy, stopped=stopped, trusted=True
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
            source = self.run.topology.company_of_ingest(message.topic)
            return self._dead(self._undecided(message, source), "unprocessable", type(exc).__name__)

    def _process(self, message: InMessage) -> Outcome:
        read = self._read(message)
        if isinstance(read, _Unreadable):
            return self._dead(self._undecided(message, read.source), read.reason, read.detail)
        source, key, decoded = read.source, read.key, read.decoded
        version, record = decoded.reading.version, decoded.record
        now = self.now()
        # Asked once: joint use and the channels decide under the same state of the subject's rights.
        stopped = self.is_stopped(source, key)
        decision = self._decide(read, now, stopped)
        trace = trace_id(message)
        if decision.status is Status.INVALID:
            decided = Decided(
                message, source, self._subject_of(message, source), decision, decoded.schema_id, trace, now
            )
            return self._dead(decided, decision.reason.value, decision.detail, record=record)
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
            decided = Decided(
                message, source, self._subject_of(message, source), decision, decoded.schema_id, trace, now
            )
            detail = "a delivery held a protected field"
            return self._dead(decided, "leak_canary", detail, record=record, leaks=leaks)
        subject = self.run.subjects.subject(source, key)  # one HMAC per input: the audit's and the cells' key
        decided = Decided(message, source, subject, decision, decoded.schema_id, trace, now)
        messages = self._deliveries(read, decision, trace)
        if provided:
            messages += self._provisions(decided, read, decision, provided)
        messages.append(audit_message(self.run, decided, provided=provided))
        if decision.status is Status.SHARED:
            counted = self.contributions.message(self.deciding.policy or self.deciding.policies.latest, decided, record)
            if counted is not None:
                messages.append(counted)
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

    def _deliveries(self, read: _Read, decision: Decision, trace: str) -> list[OutMessage]:
        """Each recipient's projection, encoded once per projection (recipients of the same items
        share it) and headed for its recipient."""
        version = read.decoded.reading.version
        topology = self.run.topology
        key = f"{read.source}:{read.key}".encode()
        messages = []
        encoded: dict[int, bytes] = {}
        for recipient, delivery in decision.deliveries.items():
            topic = topology.deliver(recipient)
            body_out = encoded.get(id(delivery.record))
            if body_out is None:
                body_out = encoded[id(delivery.record)] = version.delivery_codec.encode(delivery.record)
            headers = self._headers(delivery, decision, read.source, trace)
            delivery_id = self.reader.delivery_id(version, topic)
            messages.append(OutMessage(topic, key, frame(delivery_id, body_out), headers))
        return messages

    def _provided(
        self, read: _Read, now: dt.datetime, stopped: bool
    ) -> tuple[dict[str, Delivery], tuple[tuple[str, str], ...]]:
        """What each standing channel of the insurer's notice receives of a provider's record (none
        for another company's, or without channels): the same engine decides, channel by channel.
        Also which channels it did not go to, and why (counted for the dashboards)."""
        deciding = self.deciding
        policy = deciding.policy or deciding.policies.in_force(now)
        if not deciding.provide_channels or policy is None or policy.handling is None:
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
                read.decoded.record,
                read.source,
                channel,
                now=now,
                policy=deciding.policy,
                stopped=stopped,
                trusted=True,
            )
            if decision.status is Status.SHARED:
                provided[channel] = decision.deliveries[channel]
            else:
                withheld.append((channel, decision.reason.value))
        return provided, tuple(withheld)

    def _provisions(
        self, decided: Decided, read: _Read, decision: Decision, provided: dict[str, Delivery]
    ) -> list[OutMessage]:
        """Each channel's delivery, with what its basis leaves behind (``provision_messages``), in
        the input's transaction."""
        deciding = self.deciding
        policy = deciding.policy or deciding.policies.in_force(decided.at) or deciding.policies.latest
        version = read.decoded.reading.version
        out = []
        for channel_id, delivery in provided.items():
            channel = policy.channels_by_id[channel_id]
            codec, schema_id = self._channel_writer(version, policy, channel_id)
            headers = self._headers(
                delivery,
                decision,
                read.source,
                decided.trace,
                (H_BASIS, channel.basis.value.encode()),
                (H_FIELDS, ",".join(delivery.fields).encode()),
            )
            body = frame(schema_id, codec.encode(delivery.record))
            topic = self.run.topology.provide(channel_id)
            out.append(OutMessage(topic, f"{read.source}:{read.key}".encode(), body, headers))
            out += provision_messages(self.run, decided, channel, delivery)
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
            *self.run.extra_headers,
        ]

    def _channel_writer(self, version: GovernedVersion, policy: Policy, channel: str) -> tuple[AvroCodec, int]:
        """The codec and registered schema id of what ``channel`` receives of ``version`` records."""
        cache_key = (version.name, policy.version, channel)
        writer = self._channel_writers.get(cache_key)
        if writer is None:
            raw = channel_schema(version.classified, policy, channel)
            schema_id = self.reader.registry.register(f"{self.run.topology.provide(channel)}-value", raw)
            writer = self._channel_writers[cache_key] = (AvroCodec(raw), schema_id)
        return writer

    def pack_contributions(self, messages: Sequence[OutMessage]) -> list[OutMessage]:
        """A batch's messages with its statistics contributions in one message (the batch loop's
        ``pack``): one message a transaction on that topic, not one a shared record."""
        return pack(messages, self.run.topology.stats_contributions)

    def _subject_of(self, message: InMessage, source: str | None) -> str | None:
        """A dead letter's subject: the pseudonym of the customer its key names, if it has one."""
        key = customer_key(message.key) if message.key is not None else ""
        return self.run.subjects.subject(source or "", key) if key else None

    def _undecided(self, message: InMessage, source: str | None) -> Decided:
        """An input that is a dead letter before any decision."""
        return Decided(message, source, self._subject_of(message, source), None, None, trace_id(message), self.now())

    def _dead(
        self,
        decided: Decided,
        reason: str,
        detail: str,
        *,
        record: Mapping[str, Any] | None = None,
        leaks: tuple[tuple[str, str], ...] = (),
    ) -> Outcome:
        """A dead letter, its audit event and, for a canary hit, the incident and the source's notice."""
        out = []
        copy = dead_letter(self.run, decided, reason, detail)
        if copy is not None:
            out.append(copy)
        out.append(audit_message(self.run, decided, reason=reason, leaks=leaks))
        if leaks:
            out += canary_hit(self.run, decided, leaks)
        decision = decided.decision
        return Outcome(
            Status.INVALID,
            reason,
            decided.source,
            tuple(out),
            {},
            decision.dropped if decision else (),
            leaks=leaks,
            decision=decision,
            record=record,
        )
