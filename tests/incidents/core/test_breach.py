"""Art. 26 triggers at their boundaries and the reporting deadlines across month ends."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from streams.audit.core.event import AuditEvent
from streams.incidents.core.breach import (
    GAP,
    JST,
    REPORT_HEADINGS,
    IncidentFacts,
    Trigger,
    assess,
    canary_exposure,
    days_left,
    deadlines,
    delivery_exposure,
    draft_report,
)


@pytest.mark.parametrize(
    ("subjects", "classes", "expected"),
    [
        (1_000, ["name", "address"], set()),
        (1_001, ["name", "address"], {Trigger.OVER_1000_SUBJECTS}),
        (1_000, ["sensitive"], {Trigger.SENSITIVE}),
        (1_001, ["sensitive"], {Trigger.SENSITIVE, Trigger.OVER_1000_SUBJECTS}),
        (1, ["item"], set()),
        (0, [], set()),
    ],
)
def test_the_triggers_hold_exactly_at_their_boundaries(
    subjects: int, classes: list[str], expected: set[Trigger]
) -> None:
    assessment = assess(subjects=subjects, classes=classes)
    assert assessment.triggers == expected
    assert assessment.reportable == bool(expected)


def test_an_operators_findings_are_triggers_of_their_own() -> None:
    assert assess(subjects=1, classes=[], financial_harm=True).triggers == {Trigger.FINANCIAL_HARM}
    assert assess(subjects=1, classes=[], wrongful_purpose=True).triggers == {Trigger.WRONGFUL_PURPOSE}


@pytest.mark.parametrize(
    ("aware_at", "wrongful", "preliminary", "final"),
    [
        # 31 January + 30 days is 2 March in 2026 and 1 March in the leap year 2028.
        (dt.datetime(2026, 1, 31, 10, tzinfo=JST), False, dt.date(2026, 2, 5), dt.date(2026, 3, 2)),
        (dt.datetime(2028, 1, 31, 10, tzinfo=JST), False, dt.date(2028, 2, 5), dt.date(2028, 3, 1)),
        # Late on 31 January in UTC is already 1 February in Japan.
        (dt.datetime(2026, 1, 31, 16, tzinfo=dt.UTC), False, dt.date(2026, 2, 6), dt.date(2026, 3, 3)),
        # A wrongful purpose: 60 days, across a year end.
        (dt.datetime(2026, 12, 15, 9, tzinfo=JST), True, dt.date(2026, 12, 20), dt.date(2027, 2, 13)),
        (dt.datetime(2026, 11, 30, 9, tzinfo=JST), False, dt.date(2026, 12, 5), dt.date(2026, 12, 30)),
    ],
)
def test_deadlines_count_days_in_japan_from_the_day_after_awareness(
    aware_at: dt.datetime, wrongful: bool, preliminary: dt.date, final: dt.date
) -> None:
    found = deadlines(aware_at, wrongful_purpose=wrongful)
    assert (found.preliminary_limit, found.final) == (preliminary, final)
    assert found.preliminary_target == found.aware_on + dt.timedelta(days=3)


def test_the_next_deadline_and_the_days_left() -> None:
    found = deadlines(dt.datetime(2026, 1, 31, 10, tzinfo=JST), wrongful_purpose=False)
    assert found.next_after(dt.date(2026, 2, 5)) == ("preliminary", dt.date(2026, 2, 5))
    assert found.next_after(dt.date(2026, 2, 6)) == ("final", dt.date(2026, 3, 2))
    assert found.next_after(dt.date(2026, 3, 3)) is None
    assert days_left(found.final, dt.datetime(2026, 3, 1, 15, tzinfo=dt.UTC)) == 0  # 2 March in Japan
    with pytest.raises(ValueError):
        deadlines(dt.datetime(2026, 1, 1), wrongful_purpose=False)


def _facts(**changes: object) -> IncidentFacts:
    aware = dt.datetime(2026, 3, 31, 22, tzinfo=dt.UTC)
    facts = IncidentFacts(
        incident_id="inc-1",
        opened_by="leak_canary",
        aware_at=aware,
        summary="a delivery held a protected field",
        recipients=("jcom-insurance",),
        sources=("jcom",),
        items=(("name", "氏名", "Name"),),
        classes=("sensitive",),
        subjects=1_001,
        deliveries=1_050,
        blocked=True,
        notices_written=1_001,
        assessment=assess(subjects=1_001, classes=["sensitive"]),
        deadlines=deadlines(aware, wrongful_purpose=False),
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_report_has_every_required_heading_in_order_and_marks_gaps(lang: str) -> None:
    report = draft_report(_facts(), lang)
    positions = [report.index(f"## {n}. {heading}") for n, heading in enumerate(REPORT_HEADINGS[lang], start=1)]
    assert positions == sorted(positions) and len(positions) == 9
    assert report.count(GAP[lang]) >= 5  # cause, damage, publication, prevention, other: for a person
    assert "2026-04-01" in report  # became aware on 1 April in Japan
    assert ("1,001人" if lang == "ja" else "1,001 data subjects") in report
    assert "2026-05-01" in report  # the final report, 30 days after


def test_a_report_is_drafted_in_japanese_or_english_only() -> None:
    with pytest.raises(ValueError):
        draft_report(_facts(), "fr")


def _event(subject: str, **fields: object) -> AuditEvent:
    event: dict[str, object] = {
        "subject": subject,
        "source": "jcom",
        "status": "shared",
        "reason": "shared",
        "recipients": {"jcom-insurance": {"purposes": ["jointuse.billing"], "items": ["name", "address"]}},
        "processed_at_ms": 1_000,
        "input": {"topic": "p.ingest.jcom.customer.v1", "partition": 1, "offset": int(subject[1:])},
    }
    event.update(fields)
    return AuditEvent.from_json(event)


def test_a_canary_exposure_counts_the_blocked_deliveries_and_their_classes() -> None:
    events = [
        _event(
            "s1",
            status="invalid",
            reason="leak_canary",
            recipients={},
            leaks=[
                {"recipient": "jcom-insurance", "class": "sensitive"},
                {"recipient": "jcom-insurance", "class": "secrecy_of_communications"},
            ],
        ),
        _event(
            "s2",
            status="invalid",
            reason="leak_canary",
            recipients={},
            leaks=[{"recipient": "jcom-insurance", "class": "sensitive"}],
        ),
        _event("s3"),  # shared normally: not part of it
    ]
    exposure = canary_exposure(events)
    assert exposure.subjects == {"s1", "s2"} and exposure.deliveries == 2 and exposure.blocked
    assert exposure.classes == ("secrecy_of_communications", "sensitive")
    assert [i[2:] for i in exposure.inputs] == [
        ("p.ingest.jcom.customer.v1", 1, 1),
        ("p.ingest.jcom.customer.v1", 1, 2),
    ]
    assert assess(subjects=len(exposure.subjects), classes=exposure.classes).triggers == {Trigger.SENSITIVE}


def test_a_delivery_exposure_is_bounded_by_recipient_time_and_subjects() -> None:
    events = [
        _event("s1", processed_at_ms=500),
        _event("s2"),
        _event("s3", recipients={"jcom": {"purposes": [], "items": ["email"]}}),
        _event("s4", status="withheld", recipients={}),
        _event("s5", processed_at_ms=2_000),
    ]
    exposure = delivery_exposure(events, recipient="jcom-insurance", from_ms=1_000, to_ms=2_000)
    assert exposure.subjects == {"s2"} and exposure.items == ("address", "name") and not exposure.blocked
    assert delivery_exposure(events, subjects=frozenset({"s3", "s4"})).subjects == {"s3"}
    assert delivery_exposure(events).deliveries == 4
    assert "sensitive" not in delivery_exposure(events).classes
