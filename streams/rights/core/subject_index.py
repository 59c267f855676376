"""The subject index, for rights requests at national scale: one row per data subject, folded from the
audit topic, so that a disclosure report, an erasure or a dry-run comparison reads one row instead
of the whole history. Values only: no Kafka, no clock. The adapter keeps rows in a faust table.

The audit topic is keyed by the subject's pseudonym, so a subject's events are in one audit
partition (in another one only after partitions were added). A row remembers the offsets of the
events it has folded, from the consumer's committed offset of their partition on (every event
below it was folded: the consumer commits no further): folding the same event again (a replay of
the audit topic, a restarted consumer, a message read again after a rebalance, in any order)
changes nothing, so rows are the same however often and in whatever order the topic is read.

A row groups a subject's deliveries by what was received: the recipient, the notice version, the
items and the purposes. Per group it keeps the first and last delivery times, the number of
deliveries and the last input; a report from the row says the same as one from every audit event
of the subject (``exposures_of`` turns those events into the same groups, for that comparison).

A row also keeps the corrections (訂正) filed for the subject: a source company republished a
corrected record, and the report tells, per recipient, whether a delivery has followed since.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from streams.audit.core.event import AuditEvent


@dataclass(frozen=True, slots=True)
class Exposure:
    """What one recipient received about a subject, under one notice version, for one set of items
    and purposes: when first and last, how often, and from which input last."""

    recipient: str
    policy_version: str | None
    items: tuple[str, ...]
    purposes: tuple[str, ...]
    first_at_ms: int
    last_at_ms: int
    deliveries: int
    last_input_topic: str
    last_input_offset: int
    basis: str = "joint_use"  # a channel of the insurer's notice says its own (streams.policy.bases)
    fields: tuple[str, ...] = ()  # the protected fields a channel received, by path

    @property
    def group(self) -> tuple[str, str | None, tuple[str, ...], tuple[str, ...], str, tuple[str, ...]]:
        return (self.recipient, self.policy_version, self.items, self.purposes, self.basis, self.fields)


@dataclass(frozen=True, slots=True)
class Correction:
    """A source company's word that it republished a corrected record of the subject."""

    request_id: str
    source: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class SubjectRow:
    """Everything the audit says was disclosed about one subject (a pseudonym)."""

    subject: str
    exposures: tuple[Exposure, ...] = ()  # ordered by first delivery, then recipient
    # (audit partition, offset) of each event folded at or above the consumer's committed offset of
    # that partition when the row was last written, sorted
    applied: tuple[tuple[int, int], ...] = ()
    corrections: tuple[Correction, ...] = ()  # by time filed

    @property
    def recipients(self) -> frozenset[str]:
        return frozenset(e.recipient for e in self.exposures)

    def reached(self) -> dict[str, str]:
        """Every recipient the subject was disclosed to, with the legal basis it received under."""
        return {e.recipient: e.basis for e in self.exposures}

    @property
    def first_at_ms(self) -> int | None:
        return min((e.first_at_ms for e in self.exposures), default=None)

    @property
    def last_at_ms(self) -> int | None:
        return max((e.last_at_ms for e in self.exposures), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "applied": [list(pair) for pair in self.applied],
            "corrections": [
                {"request_id": c.request_id, "source": c.source, "at_ms": c.at_ms} for c in self.corrections
            ],
            "exposures": [
                {
                    "recipient": e.recipient,
                    "policy_version": e.policy_version,
                    "items": list(e.items),
                    "purposes": list(e.purposes),
                    "first_at_ms": e.first_at_ms,
                    "last_at_ms": e.last_at_ms,
                    "deliveries": e.deliveries,
                    "last_input_topic": e.last_input_topic,
                    "last_input_offset": e.last_input_offset,
                    **({"basis": e.basis, "fields": list(e.fields)} if e.basis != "joint_use" else {}),
                }
                for e in self.exposures
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubjectRow:
        return cls(
            subject=str(data["subject"]),
            applied=tuple((int(p), int(o)) for p, o in data["applied"]),
            corrections=tuple(
                Correction(str(c["request_id"]), str(c["source"]), int(c["at_ms"])) for c in data.get("corrections", ())
            ),
            exposures=tuple(
                Exposure(
                    recipient=str(e["recipient"]),
                    policy_version=e["policy_version"],
                    items=tuple(e["items"]),
                    purposes=tuple(e["purposes"]),
                    first_at_ms=int(e["first_at_ms"]),
                    last_at_ms=int(e["last_at_ms"]),
                    deliveries=int(e["deliveries"]),
                    last_input_topic=str(e["last_input_topic"]),
                    last_input_offset=int(e["last_input_offset"]),
                    basis=str(e.get("basis", "joint_use")),
                    fields=tuple(e.get("fields", ())),
                )
                for e in data["exposures"]
            ),
        )


def fold(
    row: SubjectRow | None, event: AuditEvent, partition: int, offset: int, committed: int = 0
) -> SubjectRow | None:
    """The row after one audit event of its subject, read at ``offset`` of audit ``partition``, whose
    committed offset is ``committed``. An event the row has folded already changes nothing, nor does
    one below the committed offset (folded before the commit, and never read again but by a replay);
    an event without a subject (an input that had no key) has no row. The row forgets the offsets
    below the committed one: what it remembers is what may still be read again."""
    subject = event.subject
    if not subject:
        return row
    if offset < committed or (row is not None and (partition, offset) in row.applied):
        return row
    if row is None:
        row = SubjectRow(subject)
    applied = [(p, o) for p, o in row.applied if p != partition or o >= committed]
    applied.append((partition, offset))
    exposures = {e.group: e for e in row.exposures}
    for delivered in _deliveries(event):
        known = exposures.get(delivered.group)
        if known is None:
            exposures[delivered.group] = delivered
            continue
        # The last input by time, then by input position: the same whatever order events are folded in.
        later = _last_input(delivered) >= _last_input(known)
        exposures[delivered.group] = replace(
            known,
            first_at_ms=min(known.first_at_ms, delivered.first_at_ms),
            last_at_ms=max(known.last_at_ms, delivered.last_at_ms),
            deliveries=known.deliveries + 1,
            last_input_topic=delivered.last_input_topic if later else known.last_input_topic,
            last_input_offset=delivered.last_input_offset if later else known.last_input_offset,
        )
    return SubjectRow(subject, _ordered(exposures.values()), tuple(sorted(applied)), row.corrections)


def _last_input(exposure: Exposure) -> tuple[int, str, int]:
    return (exposure.last_at_ms, exposure.last_input_topic, exposure.last_input_offset)


def fold_correction(row: SubjectRow | None, subject: str, correction: Correction) -> SubjectRow:
    """The row with a correction filed; filing the same request again changes nothing."""
    row = row or SubjectRow(subject)
    if any(c.request_id == correction.request_id for c in row.corrections):
        return row
    corrections = tuple(sorted((*row.corrections, correction), key=lambda c: (c.at_ms, c.request_id)))
    return replace(row, corrections=corrections)


def correction_delivered(row: SubjectRow, correction: Correction) -> dict[str, bool]:
    """Per recipient the subject was disclosed to: whether a delivery has followed the correction
    (the corrected record reached it) or not yet."""
    latest: dict[str, int] = {}
    for exposure in row.exposures:
        latest[exposure.recipient] = max(latest.get(exposure.recipient, 0), exposure.last_at_ms)
    return {recipient: at >= correction.at_ms for recipient, at in sorted(latest.items())}


def exposures_of(events: Iterable[AuditEvent], subjects: frozenset[str]) -> tuple[Exposure, ...]:
    """The same groups straight from audit events, in the order read (the whole-topic scan the
    index replaces): for comparing a report from the index with one from the audit topic."""
    rows: dict[str, SubjectRow | None] = {}
    for position, event in enumerate(events):
        subject = event.subject
        if subject is not None and subject in subjects:
            rows[subject] = fold(rows.get(subject), event, 0, position)
    return _ordered(e for row in rows.values() if row is not None for e in row.exposures)


def exposures_of_rows(rows: Iterable[SubjectRow]) -> tuple[Exposure, ...]:
    """The exposures of several rows (one subject's pseudonyms under each key), in report order."""
    return _ordered(e for row in rows for e in row.exposures)


def _deliveries(event: AuditEvent) -> list[Exposure]:
    """What the event says each recipient received: joint users' deliveries, and what channels of
    the insurer's notice were provided (whatever the joint-use decision was)."""
    at, where = event.processed_at_ms, event.input
    joint = [
        Exposure(recipient, event.policy_version, what.items, what.purposes, at, at, 1, where.topic, where.offset)
        for recipient, what in event.deliveries()
    ]
    return joint + [
        Exposure(
            channel, event.policy_version, p.items, p.purposes, at, at, 1, where.topic, where.offset, p.basis, p.fields
        )
        for channel, p in event.provisions.items()
    ]


def _ordered(exposures: Iterable[Exposure]) -> tuple[Exposure, ...]:
    return tuple(
        sorted(
            exposures, key=lambda e: (e.first_at_ms, e.recipient, e.policy_version or "", e.items, e.basis, e.fields)
        )
    )
