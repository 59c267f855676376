"""Third-party provision abroad (reinsurance): a separate egress from the provider's ingest topic.

For one foreign recipient, every record of the provider's own ingest topic passes the
``ForeignGate``; what it allows goes to ``<prefix>.foreign.<recipient>...`` with a provision record
(APPI Art. 29) in the same transaction. Everything else is refused and counted. Invalid input is
skipped here: the joint-use pipeline dead-letters it from the same topic.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from streams.errors import DEPENDENCY_ERRORS, SerdeError
from streams.messages import H_POLICY_VERSION, H_SOURCE, InMessage, OutMessage
from streams.policy.foreign import ForeignGate, ForeignReason, foreign_schema
from streams.policy.loader import PolicySet
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedReader, GovernedVersion
from streams.serde.wire import frame
from streams.topology import Topology


class ForeignStatus(StrEnum):
    """What the foreign egress did with a record (Art. 28): provided abroad, or refused."""

    PROVIDED = "provided"
    REFUSED = "refused"


@dataclass(frozen=True)
class ForeignOutcome:
    """What became of one record at the foreign egress: provided abroad (the record and its
    provision record are the messages), or refused, and why."""

    reason: ForeignReason
    source: str | None
    messages: tuple[OutMessage, ...] = ()

    @property
    def provided(self) -> bool:
        return self.reason is ForeignReason.PROVIDED

    @property
    def status(self) -> ForeignStatus:
        return ForeignStatus.PROVIDED if self.provided else ForeignStatus.REFUSED


@dataclass
class _Writer:
    gate: ForeignGate
    out_codec: AvroCodec
    out_id: int


@dataclass
class ForeignProcessor:
    """Reads each record into its governed version (never by the writer's labels) and passes it
    through the gate of that version and the notice in force."""

    topology: Topology
    policies: PolicySet
    reader: GovernedReader
    recipient: str
    is_stopped: Callable[[str, str], bool] = lambda source, key: False
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    refused: dict[str, int] = field(default_factory=dict)
    _writers: dict[tuple[str, str], _Writer] = field(default_factory=dict)

    def _writer(self, version: GovernedVersion) -> _Writer:
        policy = self.policies.in_force(self.now()) or self.policies.latest
        writer = self._writers.get((version.name, policy.version))
        if writer is None:
            out_schema = foreign_schema(version.classified, policy, self.recipient)
            out_id = self.reader.registry.register(f"{self.topology.foreign(self.recipient)}-value", out_schema)
            writer = _Writer(ForeignGate(version.classified, policy, self.recipient), AvroCodec(out_schema), out_id)
            self._writers[(version.name, policy.version)] = writer
        return writer

    def process(self, message: InMessage) -> ForeignOutcome:
        """Never raises for anything about the record (it is refused and counted); only a
        dependency's failure propagates, for a retry."""
        try:
            return self._process(message)
        except DEPENDENCY_ERRORS:
            raise
        except Exception:
            return self._refuse(self.topology.company_of_ingest(message.topic) or "", ForeignReason.NOT_A_RECORD)

    def _process(self, message: InMessage) -> ForeignOutcome:
        source = self.topology.company_of_ingest(message.topic) or ""
        try:
            decoded = self.reader.decode(message.value)
        except SerdeError:
            return self._refuse(source, ForeignReason.NOT_A_RECORD)
        writer = self._writer(decoded.reading.version)
        record = decoded.record
        key = record.get("customer_id") if type(record) is dict else None
        stopped = isinstance(key, str) and self.is_stopped(source, key)
        ref = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        decision = writer.gate.decide(record, source, now=self.now(), stopped=stopped, input_ref=ref)
        if not decision.provided or decision.record is None or decision.provision is None:
            return self._refuse(source, decision.reason)
        subject = str(decision.provision["subject_key"]).encode()
        headers: list[tuple[str, str | bytes | None]] = [
            (H_SOURCE, source.encode()),
            (H_POLICY_VERSION, writer.gate.policy.version.encode()),
            ("jointuse-provision", b"third_party_abroad"),
        ]
        out = (
            OutMessage(
                self.topology.foreign(self.recipient),
                subject,
                frame(writer.out_id, writer.out_codec.encode(decision.record)),
                headers,
            ),
            OutMessage(
                self.topology.provision_records,
                subject,
                json.dumps(decision.provision, separators=(",", ":"), ensure_ascii=False).encode(),
                [],
            ),
        )
        return ForeignOutcome(ForeignReason.PROVIDED, source, out)

    def _refuse(self, source: str, reason: ForeignReason) -> ForeignOutcome:
        self.refused[reason.value] = self.refused.get(reason.value, 0) + 1
        return ForeignOutcome(reason, source or None)
