"""The incidents topic: reading every incident, opening one from the audit, and the events an
operator adds (findings, filed reports, the close). The rules are in streams.incidents.core.book and
streams.incidents.core.breach; this module only reads and writes Kafka."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.audit.core.event import AuditEvent, readable
from streams.errors import ConfigError
from streams.incidents.core.book import IncidentBook, leak_notice, opened_event
from streams.incidents.core.breach import IncidentScope, delivery_exposure
from streams.kafka import produce
from streams.kafka.follow import TopicFollower
from streams.kafka.produce import out
from streams.kafka.reader import RangeSpec, read_range, scan_topic
from streams.messages import OutMessage
from streams.settings import Settings
from streams.topology import Topology

# Audit events are timestamped when written, a moment after their processed_at_ms: the scan starts
# this much earlier, and the exact bound is applied to processed_at_ms.
SCAN_MARGIN = dt.timedelta(minutes=5)


class IncidentView(TopicFollower):
    """A worker's copy of every incident, for its metrics (open incidents, days to the next report)."""

    name = "incident-view"

    def __init__(self, kafka: Mapping[str, Any], topic: str, *, group_id: str) -> None:
        super().__init__(kafka, topic, group_id=group_id)
        self.book = IncidentBook()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        self.book.apply_message(key, value)


def read_book(settings: Settings) -> IncidentBook:
    """Every incident on the topic now (committed events only)."""
    book = IncidentBook()
    topology = Topology(settings.topic_prefix)
    for message in scan_topic(
        settings.kafka_common(), topology.incidents, group_id=f"{settings.topic_prefix}.auditor.incidents"
    ):
        book.apply_message(message.key(), message.value())
    return book


def audit_events(
    settings: Settings, from_time: dt.datetime | None, to_time: dt.datetime | None, on_progress: Callable[[int], None]
) -> Iterable[AuditEvent]:
    """The audit events written in about ``[from_time, to_time)`` (by the broker's time index, with a
    margin): the caller bounds them exactly by ``processed_at_ms``."""
    topology = Topology(settings.topic_prefix)
    spec = RangeSpec(
        topology.audit,
        from_time=None if from_time is None else from_time - SCAN_MARGIN,
        to_time=None if to_time is None else to_time + SCAN_MARGIN,
    )
    group = f"{settings.topic_prefix}.auditor.incidents"
    for batch in read_range(settings.kafka_common(), spec, group_id=group, batch_size=1000, on_progress=on_progress):
        yield from readable(message.value() for message in batch)


def customer_keys(settings: Settings, inputs: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int, int], str]:
    """The keys (customer ids) of the ingest records at these coordinates, read from the ingest
    topics, values unread. Needs read access to the ingest topics (the pipeline's principal); a
    record past retention has no key here."""
    wanted: dict[tuple[str, int], set[int]] = {}
    for topic, partition, offset in inputs:
        wanted.setdefault((topic, partition), set()).add(offset)
    found: dict[tuple[str, int, int], str] = {}
    group = f"{settings.topic_prefix}.auditor.incidents"
    for (topic, partition), offsets in sorted(wanted.items()):
        spec = RangeSpec(topic, partition=partition, from_offset=min(offsets), to_offset=max(offsets))
        for batch in read_range(settings.kafka_common(), spec, group_id=group, batch_size=1000):
            for message in batch:
                key = message.key()
                if message.offset() in offsets and key is not None:
                    found[(topic, partition, message.offset() or 0)] = key.decode("utf-8", "replace")
    return found


@dataclass(frozen=True)
class Opened:
    incident_id: str
    exposure: IncidentScope
    notices: int
    without_key: int  # notices that could name the pseudonym and the input only


def open_incident(
    settings: Settings,
    *,
    by: str,
    reason: str,
    recipient: str | None,
    from_time: dt.datetime | None,
    to_time: dt.datetime | None,
    subjects: Mapping[str, str] | None,
    financial_harm: bool,
    wrongful_purpose: bool,
    resolve_keys: bool = True,
    now: dt.datetime | None = None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> Opened | None:
    """Resolves what the incident concerns from the audit (what was delivered to ``recipient`` in
    the window, of ``subjects``: pseudonym → ``source:customer_id``), then writes the incident and
    one notice per subject to its source company, in one transaction: both or neither. None, and
    nothing written, when the audit has no such delivery."""
    if from_time is not None and to_time is not None and from_time >= to_time:
        raise ConfigError("--from-time must be before --to-time")
    moment = now or dt.datetime.now(dt.UTC)
    events = audit_events(settings, from_time, to_time, on_progress)
    exposure = delivery_exposure(
        events,
        recipient=recipient,
        from_ms=None if from_time is None else int(from_time.timestamp() * 1000),
        to_ms=None if to_time is None else int(to_time.timestamp() * 1000),
        subjects=None if subjects is None else frozenset(subjects),
    )
    if not exposure.deliveries:
        return None
    firsts = exposure.first_inputs()
    keys = customer_keys(settings, [(t, p, o) for _, _, t, p, o in firsts]) if resolve_keys else {}
    topology = Topology(settings.topic_prefix)
    incident_id = f"op-{moment.astimezone(dt.UTC):%Y%m%d}-{uuid.uuid4().hex[:8]}"
    messages: list[OutMessage] = []
    without_key = 0
    for subject, source, topic, partition, offset in firsts:
        subject_key = (subjects or {}).get(subject) or (
            f"{source}:{keys[(topic, partition, offset)]}" if (topic, partition, offset) in keys else None
        )
        without_key += subject_key is None
        notice = leak_notice(
            incident_id,
            company=source,
            subject=subject,
            subject_key=subject_key,
            recipients=exposure.reached.get(subject, ()),
            classes=exposure.classes,
            blocked=False,
            input_at=(topic, partition, offset),
            issued_at=moment,
        )
        messages.append(out(topology.notices(source), (subject_key or subject).encode(), notice))
    opened = opened_event(
        incident_id,
        by=by,
        reason=reason,
        at=moment,
        exposure=exposure,
        notices_written=len(messages),
        financial_harm=financial_harm,
        wrongful_purpose=wrongful_purpose,
        window=(from_time, to_time),
    )
    messages.append(out(topology.incidents, incident_id.encode(), opened))
    write_in_transaction(settings, messages)
    return Opened(incident_id, exposure, len(messages) - 1, without_key)


def append_event(settings: Settings, incident_id: str, value: bytes) -> None:
    """One more event of an incident (a finding, a filed report, the close)."""
    write_in_transaction(settings, [out(Topology(settings.topic_prefix).incidents, incident_id.encode(), value)])


def write_in_transaction(settings: Settings, messages: list[OutMessage]) -> None:
    """All of ``messages`` or none, as the privacy desk's incidents writer."""
    write_events = f"{settings.topic_prefix}.auditor.incidents"
    produce.write_in_transaction(settings.kafka_common(), write_events, messages, what="the incident")
