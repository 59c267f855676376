"""Incidents as a log: what the events fold into, the events that are refused, the next report due."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from streams.incidents.core.book import (
    IncidentBook,
    InvalidIncidentEvent,
    canary_hit_event,
    canary_incident_id,
    closed_event,
    filed_event,
    finding_event,
    opened_event,
    parse_event,
)
from streams.incidents.core.breach import IncidentScope, Trigger
from streams.policy.calendar import JST

AWARE = dt.datetime(2026, 1, 31, 10, tzinfo=JST)
INGEST = "p.ingest.jcom.customer.v1"


def _hit(incident_id: str, offset: int, subject: str, leaks: list[tuple[str, str]], at: dt.datetime = AWARE) -> bytes:
    return canary_hit_event(
        incident_id,
        at=at,
        subject=subject,
        source="jcom",
        policy_version="2025-04",
        input_at=(INGEST, 0, offset),
        leaks=leaks,
    )


def _book(*events: tuple[str, bytes]) -> IncidentBook:
    book = IncidentBook()
    for key, value in events:
        book.apply_message(key.encode(), value)
    return book


def test_canary_hits_open_one_incident_per_day_and_policy_version() -> None:
    day = canary_incident_id("2025-04", AWARE)
    assert day == "canary-20260131-2025-04"
    # 23:30 UTC on 31 January is already 1 February in Japan: another day, another incident.
    assert canary_incident_id("2025-04", dt.datetime(2026, 1, 31, 23, 30, tzinfo=dt.UTC)) == "canary-20260201-2025-04"
    assert canary_incident_id("2025-05", AWARE) != day


def test_hits_fold_into_subjects_deliveries_and_classes_counting_a_redelivered_input_once() -> None:
    day = canary_incident_id("2025-04", AWARE)
    book = _book(
        (day, _hit(day, 1, "s1", [("jcom-insurance", "sensitive"), ("jcom-insurance", "secrecy_of_communications")])),
        (day, _hit(day, 2, "s1", [("jcom-insurance", "sensitive")])),
        (day, _hit(day, 3, "s2", [("jcom", "insurer_only"), ("jcom-insurance", "sensitive")])),
        (day, _hit(day, 3, "s2", [("jcom", "insurer_only"), ("jcom-insurance", "sensitive")])),  # a replay
    )
    (incident,) = book.open()
    facts = incident.facts()
    assert (facts.subjects, facts.deliveries, facts.blocked, facts.notices_written) == (2, 4, True, 3)
    assert facts.recipients == ("jcom", "jcom-insurance")
    assert facts.classes == ("insurer_only", "secrecy_of_communications", "sensitive")
    assert facts.assessment.triggers == {Trigger.SENSITIVE}
    assert facts.opened_by == "leak_canary" and facts.aware_at == AWARE


def _exposure(subjects: int, classes: tuple[str, ...] = ("identifier", "item")) -> IncidentScope:
    return IncidentScope(
        subjects=frozenset(f"s{i}" for i in range(subjects)),
        recipients=("jcom-insurance",),
        sources=("jcom",),
        items=("name",),
        classes=classes,
        deliveries=subjects,
        blocked=False,
        inputs=(),
    )


@pytest.mark.parametrize(
    ("subjects", "classes", "reportable"),
    [(1_000, ("item",), False), (1_001, ("item",), True), (1, ("sensitive",), True), (1_000, ("sensitive",), True)],
)
def test_an_opened_incident_is_reportable_at_the_boundaries(
    subjects: int, classes: tuple[str, ...], reportable: bool
) -> None:
    opened = opened_event(
        "op-1",
        by="desk",
        reason="breach at a recipient",
        at=AWARE,
        exposure=_exposure(subjects, classes),
        notices_written=subjects,
    )
    (incident,) = _book(("op-1", opened)).open()
    assert incident.facts().subjects == subjects
    assert incident.facts().assessment.reportable is reportable
    assert (incident.next_deadline() is not None) is reportable


def test_filing_and_findings_move_the_next_deadline_and_closing_ends_it() -> None:
    opened = opened_event("op-1", by="desk", reason="r", at=AWARE, exposure=_exposure(2_000), notices_written=0)
    book = _book(("op-1", opened))
    now = dt.datetime(2026, 2, 1, 9, tzinfo=JST)
    assert book.next_deadline(now)[1:] == ("preliminary", 4)  # type: ignore[index]  # due 5 February
    book.apply_message(b"op-1", filed_event("op-1", by="desk", at=now, report="preliminary"))
    assert book.next_deadline(now)[1:] == ("final", 29)  # type: ignore[index]  # 2 March
    book.apply_message(b"op-1", finding_event("op-1", by="desk", at=now, financial_harm=False, wrongful_purpose=True))
    assert book.next_deadline(now)[1:] == ("final", 59)  # type: ignore[index]  # 60 days: 1 April
    assert Trigger.WRONGFUL_PURPOSE in book.incidents["op-1"].facts().assessment.triggers
    book.apply_message(b"op-1", closed_event("op-1", by="desk", at=now, reason="done"))
    assert book.open() == [] and book.next_deadline(now) is None


def test_an_overdue_report_has_negative_days_left() -> None:
    opened = opened_event(
        "op-1", by="desk", reason="r", at=AWARE, exposure=_exposure(1, ("sensitive",)), notices_written=0
    )
    book = _book(("op-1", opened))
    assert book.next_deadline(dt.datetime(2026, 2, 8, tzinfo=JST))[1:] == ("preliminary", -3)  # type: ignore[index]


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        (b"x", None, "value"),
        (b"x", b"not json", "value"),
        (b"x", b"[]", "value"),
        (b"x", json.dumps({"type": "deleted", "incident_id": "x", "at_ms": 1}).encode(), "type"),
        (b"y", json.dumps({"type": "closed", "incident_id": "x", "at_ms": 1}).encode(), "key"),
        (None, json.dumps({"type": "closed", "incident_id": "x", "at_ms": 1}).encode(), "key"),
        (b"x", json.dumps({"type": "closed", "incident_id": "x", "at_ms": -1}).encode(), "at_ms"),
        (b"x", json.dumps({"type": "closed", "incident_id": "x", "at_ms": True}).encode(), "at_ms"),
    ],
)
def test_malformed_events_are_refused_naming_the_rule(key: bytes | None, value: bytes | None, rule: str) -> None:
    with pytest.raises(InvalidIncidentEvent, match=f"^{rule}"):
        parse_event(key, value)
    book = _book()
    assert book.apply_message(key, value) is False and book.invalid == 1 and book.incidents == {}


def test_events_about_unknown_incidents_or_reopening_change_nothing() -> None:
    opened = opened_event("op-1", by="desk", reason="r", at=AWARE, exposure=_exposure(3), notices_written=3)
    book = _book(
        ("op-2", closed_event("op-2", by="desk", at=AWARE, reason="r")),
        ("op-1", opened),
        ("op-1", opened_event("op-1", by="someone", reason="r", at=AWARE, exposure=_exposure(9), notices_written=0)),
        ("op-1", json.dumps({"type": "filed", "incident_id": "op-1", "at_ms": 1, "report": "draft"}).encode()),
    )
    assert book.invalid == 3 and book.applied == 1
    assert book.incidents["op-1"].facts().subjects == 3 and book.incidents["op-1"].filed == set()
