"""The disclosure report (APPI Art. 33: what was disclosed about a subject, to whom, for what):
from the subject index, or from the whole audit topic (the slow path, kept as a check)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.rights.core.subject_index import (
    Correction,
    Exposure,
    correction_delivered,
    exposures_of,
    exposures_of_rows,
)
from streams.rights.index_client import IndexAnswer, SubjectIndex
from streams.settings import Settings
from streams.topology import Topology


@dataclass(frozen=True)
class CorrectionStatus:
    correction: Correction
    delivered: dict[str, bool]  # recipient -> whether a delivery has followed the correction


@dataclass(frozen=True)
class Report:
    exposures: tuple[Exposure, ...]
    read_from: str  # "index" or "audit"
    behind: dict[int, int] = field(default_factory=dict)  # audit partition -> events the index had not applied
    corrections: tuple[CorrectionStatus, ...] = ()  # from the index only

    def to_json(self) -> dict[str, Any]:
        return {
            "read_from": self.read_from,
            "index_behind": {str(p): lag for p, lag in sorted(self.behind.items())},
            "disclosures": [
                {
                    "recipient": e.recipient,
                    "basis": e.basis,  # joint use, or the channel of the insurer's notice (Art. 33(5))
                    "items": list(e.items),
                    "fields": list(e.fields),
                    "purposes": list(e.purposes),
                    "policy_version": e.policy_version,
                    "first_delivered_at": _time(e.first_at_ms).isoformat(),
                    "last_delivered_at": _time(e.last_at_ms).isoformat(),
                    "deliveries": e.deliveries,
                    "last_input_topic": e.last_input_topic,
                    "last_input_offset": e.last_input_offset,
                }
                for e in self.exposures
            ],
            "corrections": [
                {
                    "request_id": c.correction.request_id,
                    "source": c.correction.source,
                    "filed_at": _time(c.correction.at_ms).isoformat(),
                    "delivered_to": sorted(r for r, done in c.delivered.items() if done),
                    "not_yet_delivered_to": sorted(r for r, done in c.delivered.items() if not done),
                }
                for c in self.corrections
            ],
        }

    def table_lines(self) -> list[str]:
        lines = [
            f"the index had not applied the last {lag} audit offsets of partition {p}: recent deliveries may be missing"
            for p, lag in sorted(self.behind.items())
        ]
        for c in self.corrections:
            waiting = sorted(r for r, done in c.delivered.items() if not done)
            state = f"not yet delivered to {', '.join(waiting)}" if waiting else "delivered to every recipient"
            lines.append(
                f"correction {c.correction.request_id} filed {_time(c.correction.at_ms):%Y-%m-%d %H:%M:%S}: {state}"
            )
        if not self.exposures:
            return [*lines, "no disclosure recorded for this subject"]
        lines.append(
            f"{'first (UTC)':20} {'last (UTC)':20} {'count':>6} {'recipient':20} {'basis':17} {'version':8} "
            "items / purposes"
        )
        for e in self.exposures:
            lines.append(
                f"{_time(e.first_at_ms):%Y-%m-%d %H:%M:%S} {_time(e.last_at_ms):%Y-%m-%d %H:%M:%S} "
                f"{e.deliveries:>6} {e.recipient:20} {e.basis:17} {e.policy_version or '-':8} "
                f"{','.join((*e.items, *e.fields))} / {','.join(e.purposes)}"
            )
        return lines


def report_from_index(settings: Settings, subjects: Iterable[str], *, wait_seconds: float = 0.0) -> Report:
    index = SubjectIndex.of(settings)
    answers = [index.lookup(subject, wait_seconds=wait_seconds) for subject in sorted(subjects)]
    return from_answers(answers)


def from_answers(answers: Iterable[IndexAnswer]) -> Report:
    answers = list(answers)
    rows = [a.row for a in answers if a.row is not None]
    behind = {a.partition: a.lag for a in answers if a.lag}
    corrections = tuple(CorrectionStatus(c, correction_delivered(row, c)) for row in rows for c in row.corrections)
    return Report(exposures_of_rows(rows), "index", behind, corrections)


def report_from_audit(settings: Settings, subjects: frozenset[str]) -> Report:
    from streams.rights.lookups import audit_lookup

    topology = Topology(settings.topic_prefix)
    lookup = audit_lookup(settings.kafka_common(), topology, group_id=f"{settings.topic_prefix}.auditor.report")
    return Report(exposures_of(lookup(subjects), subjects), "audit")


def _time(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
