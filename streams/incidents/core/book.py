"""Leak incidents as a log: the events on the incidents topic, what they fold into, and the notices
that tell a source company which of its customers an incident concerns. Pure: values in, values out.

An incident is the fold of its events (keyed by its id, in order):

- ``canary_hit``: the leak canary blocked one input's deliveries. Written by the worker in the
  transaction that would have sent them, so a hit is on the topic exactly when the input was
  decided. The first hit opens the incident ``canary-<JST day>-<policy version>``: one incident per
  day and policy version, however many records the fault touched.
- ``opened``: an operator opened it (``jointuse incident open``), with what the audit resolved.
- ``finding``: an operator's later finding (a risk of financial harm, a wrongful purpose), which
  can add triggers and lengthen the final report's deadline.
- ``filed``: the preliminary or final report was sent to the PPC; its deadline stops counting.
- ``closed``: the response is over.

No event and no notice holds a value of any record: names, counts, pseudonyms, the customer's key
at its own company, and where the input was.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.incidents.core.breach import Deadlines, IncidentFacts, IncidentScope, assess, days_left, deadlines
from streams.messages import Decided, OutMessage, Run
from streams.policy.calendar import JST

OPENED = "opened"
CANARY_HIT = "canary_hit"
FINDING = "finding"
FILED = "filed"
CLOSED = "closed"
EVENT_TYPES = (OPENED, CANARY_HIT, FINDING, FILED, CLOSED)
REPORTS = ("preliminary", "final")
CANARY_OPENER = "leak_canary"
CANARY_SUMMARY = "the leak canary found protected fields in deliveries and blocked them"
NOTICE_TYPE = "leak_incident"


class InvalidIncidentEvent(ValueError):
    """An event on the incidents topic that cannot be applied; the message names the rule only."""


def canary_incident_id(policy_version: str | None, at: dt.datetime) -> str:
    """The incident a canary hit belongs to: one per day in Japan and policy version."""
    return f"canary-{at.astimezone(JST):%Y%m%d}-{policy_version or 'none'}"


def _millis(at: dt.datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("times must carry a UTC offset")
    return int(at.timestamp() * 1000)


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()


def _where(topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "offset": offset}


def canary_hit_event(
    incident_id: str,
    *,
    at: dt.datetime,
    subject: str | None,
    source: str,
    policy_version: str | None,
    input_at: tuple[str, int, int],
    leaks: Iterable[tuple[str, str]],
) -> bytes:
    """One blocked input: its pseudonym, its source, where it was, and (recipient, class) per leak."""
    return _dumps(
        {
            "type": CANARY_HIT,
            "incident_id": incident_id,
            "at_ms": _millis(at),
            "subject": subject,
            "source": source,
            "policy_version": policy_version,
            "input": _where(*input_at),
            "leaks": [{"recipient": r, "class": c} for r, c in sorted(set(leaks))],
        }
    )


def canary_hit(run: Run, decided: Decided, leaks: tuple[tuple[str, str], ...]) -> tuple[OutMessage, OutMessage]:
    """A canary hit opens (or adds to) the day's leak incident, and the source company is told which
    of its customers it concerns, in the transaction that would have sent the deliveries. Neither
    message holds a value of the record."""
    source = decided.source or ""
    key = decided.key
    policy_version = decided.decision.policy_version if decided.decision is not None else None
    incident_id = canary_incident_id(policy_version, decided.at)
    where = (decided.message.topic, decided.message.partition, decided.message.offset)
    hit = canary_hit_event(
        incident_id,
        at=decided.at,
        subject=decided.subject,
        source=source,
        policy_version=policy_version,
        input_at=where,
        leaks=leaks,
    )
    notice = leak_notice(
        incident_id,
        company=source,
        subject=decided.subject,
        subject_key=f"{source}:{key}" if key else None,
        recipients=(r for r, _ in leaks),
        classes=(c for _, c in leaks),
        blocked=True,
        input_at=where,
        issued_at=decided.at,
    )
    return (
        OutMessage(run.topology.incidents, incident_id.encode(), hit, list(run.extra_headers)),
        OutMessage(run.topology.notices(source), f"{source}:{key}".encode(), notice, list(run.extra_headers)),
    )


def opened_event(
    incident_id: str,
    *,
    by: str,
    reason: str,
    at: dt.datetime,
    exposure: IncidentScope,
    notices_written: int,
    financial_harm: bool = False,
    wrongful_purpose: bool = False,
    window: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
) -> bytes:
    """An incident an operator opened: what the audit resolved, as counts and names."""
    return _dumps(
        {
            "type": OPENED,
            "incident_id": incident_id,
            "at_ms": _millis(at),
            "by": by,
            "reason": reason,
            "recipients": list(exposure.recipients),
            "sources": list(exposure.sources),
            "items": list(exposure.items),
            "classes": list(exposure.classes),
            "subjects": len(exposure.subjects),
            "deliveries": exposure.deliveries,
            "blocked": exposure.blocked,
            "notices_written": notices_written,
            "financial_harm": financial_harm,
            "wrongful_purpose": wrongful_purpose,
            "window_ms": [None if w is None else _millis(w) for w in window],
        }
    )


def finding_event(incident_id: str, *, by: str, at: dt.datetime, financial_harm: bool, wrongful_purpose: bool) -> bytes:
    return _dumps(
        {
            "type": FINDING,
            "incident_id": incident_id,
            "at_ms": _millis(at),
            "by": by,
            "financial_harm": financial_harm,
            "wrongful_purpose": wrongful_purpose,
        }
    )


def filed_event(incident_id: str, *, by: str, at: dt.datetime, report: str) -> bytes:
    if report not in REPORTS:
        raise ValueError("report must be preliminary or final")
    return _dumps({"type": FILED, "incident_id": incident_id, "at_ms": _millis(at), "by": by, "report": report})


def closed_event(incident_id: str, *, by: str, at: dt.datetime, reason: str) -> bytes:
    return _dumps({"type": CLOSED, "incident_id": incident_id, "at_ms": _millis(at), "by": by, "reason": reason})


def leak_notice(
    incident_id: str,
    *,
    company: str,
    subject: str | None,
    subject_key: str | None,
    recipients: Iterable[str],
    classes: Iterable[str],
    blocked: bool,
    input_at: tuple[str, int, int] | None,
    issued_at: dt.datetime,
) -> bytes:
    """What a source company is told about one of its customers: the incident, who received (or, if
    ``blocked``, would have received) the record and which classes of data, so that it can tell its
    customer (APPI Art. 26 (2)). ``subject_key`` is ``<company>:<customer id>``, the company's own key;
    without it (the input is past retention), the pseudonym and where the input was."""
    return _dumps(
        {
            "type": NOTICE_TYPE,
            "incident_id": incident_id,
            "recipient": company,
            "subject_key": subject_key,
            "subject": subject,
            "recipients": sorted(set(recipients)),
            "classes": sorted(set(classes)),
            "blocked": blocked,
            "input": None if input_at is None else _where(*input_at),
            "issued_at": issued_at.isoformat(),
        }
    )


@dataclass
class Incident:
    """One incident, as its events so far make it."""

    incident_id: str
    opened_by: str
    aware_at_ms: int
    summary: str
    recipients: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    subject_count: int = 0
    deliveries: int = 0
    blocked: bool = False
    notices_written: int = 0
    financial_harm: bool = False
    wrongful_purpose: bool = False
    window_ms: tuple[int | None, int | None] = (None, None)
    filed: set[str] = field(default_factory=set)
    closed_at_ms: int | None = None
    hit_subjects: set[str] = field(default_factory=set)
    hit_inputs: set[tuple[str, int, int]] = field(default_factory=set)

    @property
    def is_open(self) -> bool:
        return self.closed_at_ms is None

    @property
    def aware_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.aware_at_ms / 1000, dt.UTC)

    @property
    def subjects(self) -> int:
        return self.subject_count + len(self.hit_subjects)

    @property
    def deadlines(self) -> Deadlines:
        return deadlines(self.aware_at, wrongful_purpose=self.wrongful_purpose)

    def next_deadline(self) -> tuple[str, dt.date] | None:
        """The earliest report not filed yet: ("preliminary" | "final", its last day). None once
        both are filed or the incident is not reportable."""
        if not self.is_open or not self.facts().assessment.reportable:
            return None
        due = self.deadlines
        for report, day in (("preliminary", due.preliminary_limit), ("final", due.final)):
            if report not in self.filed:
                return report, day
        return None

    def facts(self) -> IncidentFacts:
        classes = tuple(sorted(self.classes))
        return IncidentFacts(
            incident_id=self.incident_id,
            opened_by=self.opened_by,
            aware_at=self.aware_at,
            summary=self.summary,
            recipients=tuple(sorted(self.recipients)),
            sources=tuple(sorted(self.sources)),
            items=tuple((i, i, i) for i in sorted(self.items)),
            classes=classes,
            subjects=self.subjects,
            deliveries=self.deliveries,
            blocked=self.blocked,
            notices_written=self.notices_written,
            assessment=assess(
                subjects=self.subjects,
                classes=classes,
                financial_harm=self.financial_harm,
                wrongful_purpose=self.wrongful_purpose,
            ),
            deadlines=self.deadlines,
            window=tuple(  # type: ignore[arg-type]
                None if w is None else dt.datetime.fromtimestamp(w / 1000, dt.UTC) for w in self.window_ms
            ),
        )


def _text(event: Mapping[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidIncidentEvent(f"{name}: must be a non-empty string")
    return value


def _int(event: Mapping[str, Any], name: str) -> int:
    value = event.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidIncidentEvent(f"{name}: must be a whole number, 0 or more")
    return value


def _texts(event: Mapping[str, Any], name: str) -> set[str]:
    value = event.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidIncidentEvent(f"{name}: must be a list of strings")
    return set(value)


def _flag(event: Mapping[str, Any], name: str) -> bool:
    value = event.get(name, False)
    if not isinstance(value, bool):
        raise InvalidIncidentEvent(f"{name}: must be true or false")
    return value


def parse_event(key: bytes | None, value: bytes | None) -> dict[str, Any]:
    """The event, checked: a JSON object of a known type whose ``incident_id`` is the message key."""
    if value is None:
        raise InvalidIncidentEvent("value: an incident event is never a tombstone")
    try:
        event = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidIncidentEvent("value: not JSON") from None
    if not isinstance(event, dict):
        raise InvalidIncidentEvent("value: must be a JSON object")
    if event.get("type") not in EVENT_TYPES:
        raise InvalidIncidentEvent(f"type: must be one of {', '.join(EVENT_TYPES)}")
    incident_id = _text(event, "incident_id")
    if key is None or key.decode("utf-8", "replace") != incident_id:
        raise InvalidIncidentEvent("key: must equal incident_id")
    _int(event, "at_ms")
    return event


class IncidentBook:
    """Every incident on the topic, folded in order. An event that cannot be applied (malformed, or
    about an incident that was never opened) is counted in ``invalid`` and changes nothing."""

    def __init__(self) -> None:
        self.incidents: dict[str, Incident] = {}
        self.invalid = 0
        self.applied = 0

    def apply_message(self, key: bytes | None, value: bytes | None) -> bool:
        try:
            self.apply(parse_event(key, value))
        except InvalidIncidentEvent:
            self.invalid += 1
            return False
        return True

    def apply(self, event: Mapping[str, Any]) -> None:
        kind, incident_id, at = event["type"], event["incident_id"], event["at_ms"]
        found = self.incidents.get(incident_id)
        if kind == CANARY_HIT:
            found = found or self.incidents.setdefault(
                incident_id, Incident(incident_id, CANARY_OPENER, at, CANARY_SUMMARY, blocked=True)
            )
            self._hit(found, event)
        elif kind == OPENED:
            if found is not None:
                raise InvalidIncidentEvent("incident_id: already opened")
            self.incidents[incident_id] = self._opened(event)
        elif found is None:
            raise InvalidIncidentEvent("incident_id: no such incident")
        elif kind == FINDING:
            found.financial_harm |= _flag(event, "financial_harm")
            found.wrongful_purpose |= _flag(event, "wrongful_purpose")
        elif kind == FILED:
            report = event.get("report")
            if report not in REPORTS:
                raise InvalidIncidentEvent("report: must be preliminary or final")
            found.filed.add(report)
        elif kind == CLOSED and found.closed_at_ms is None:
            found.closed_at_ms = at
        self.applied += 1

    @staticmethod
    def _hit(incident: Incident, event: Mapping[str, Any]) -> None:
        where = event.get("input")
        if not isinstance(where, dict):
            raise InvalidIncidentEvent("input: must be an object")
        coordinates = (str(where.get("topic")), _int(where, "partition"), _int(where, "offset"))
        leaks = event.get("leaks")
        if not isinstance(leaks, list) or not leaks or not all(isinstance(leak, dict) for leak in leaks):
            raise InvalidIncidentEvent("leaks: must be a non-empty list of objects")
        if coordinates in incident.hit_inputs:
            return  # the same input again (a replay redelivering it): one blocked record
        incident.hit_inputs.add(coordinates)
        subject = event.get("subject")
        if isinstance(subject, str) and subject:
            incident.hit_subjects.add(subject)
        incident.sources.add(_text(event, "source"))
        recipients = {_text(leak, "recipient") for leak in leaks}
        incident.recipients |= recipients
        incident.classes |= {_text(leak, "class") for leak in leaks}
        incident.deliveries += len(recipients)
        incident.notices_written += 1  # the worker told the source company in the same transaction

    @staticmethod
    def _opened(event: Mapping[str, Any]) -> Incident:
        window = event.get("window_ms", [None, None])
        if (
            not isinstance(window, list)
            or len(window) != 2
            or not all(w is None or (isinstance(w, int) and not isinstance(w, bool)) for w in window)
        ):
            raise InvalidIncidentEvent("window_ms: must be two times in ms or null")
        return Incident(
            incident_id=event["incident_id"],
            opened_by=_text(event, "by"),
            aware_at_ms=event["at_ms"],
            summary=_text(event, "reason"),
            recipients=_texts(event, "recipients"),
            sources=_texts(event, "sources"),
            items=_texts(event, "items"),
            classes=_texts(event, "classes"),
            subject_count=_int(event, "subjects"),
            deliveries=_int(event, "deliveries"),
            blocked=_flag(event, "blocked"),
            notices_written=_int(event, "notices_written"),
            financial_harm=_flag(event, "financial_harm"),
            wrongful_purpose=_flag(event, "wrongful_purpose"),
            window_ms=(window[0], window[1]),
        )

    def open(self) -> list[Incident]:
        # list() copies in one step: a worker's follower thread may add an incident meanwhile.
        return [i for i in list(self.incidents.values()) if i.is_open]

    def next_deadline(self, now: dt.datetime) -> tuple[Incident, str, int] | None:
        """The open incident whose next report is due soonest: (incident, report, days left)."""
        due = [(i, *n) for i in self.open() if (n := i.next_deadline()) is not None]
        if not due:
            return None
        incident, report, day = min(due, key=lambda d: (d[2], d[0].incident_id))
        return incident, report, days_left(day, now)
