"""The subject index's rows (pure): folded from audit events, idempotent under replays, and saying
what the whole-topic scan of the disclosure report says."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streams.audit.core.event import AuditEvent
from streams.rights.core.subject_index import SubjectRow, exposures_of, exposures_of_rows, fold

SUBJECTS = ("s1", "s2", "s3")
RECIPIENTS = ("jcom", "jcom-insurance", "jcom-mobile")

_what = st.fixed_dictionaries(
    {
        "items": st.lists(st.sampled_from(("name", "address", "email")), unique=True, max_size=3),
        "purposes": st.lists(st.sampled_from(("jointuse.billing", "jointuse.support")), unique=True, max_size=2),
    }
)
CHANNELS = {"claims-investigator": "entrustment", "domestic-re": "reinsurance"}
_provided = st.sampled_from(sorted(CHANNELS)).flatmap(
    lambda channel: st.tuples(
        st.just(channel),
        st.fixed_dictionaries(
            {
                "basis": st.just(CHANNELS[channel]),
                "items": st.lists(st.sampled_from(("name", "address")), unique=True, max_size=2),
                "purposes": st.just(["insurer.claims_payment"]),
                "fields": st.lists(st.sampled_from(("policy", "medical_history")), unique=True, max_size=2),
            }
        ),
    )
)
events = st.lists(
    st.fixed_dictionaries(
        {
            "subject": st.sampled_from((*SUBJECTS, None)),
            "status": st.sampled_from(("shared", "shared", "withheld", "invalid")),
            "recipients": st.dictionaries(st.sampled_from(RECIPIENTS), _what, max_size=3),
            "provisions": st.lists(_provided, max_size=2).map(dict),
            "policy_version": st.sampled_from(("2026-01", "2026-04")),
            "processed_at_ms": st.integers(min_value=0, max_value=10**6),
            "input": st.fixed_dictionaries(
                {"topic": st.just("p.ingest.jcom.customer.v1"), "offset": st.integers(min_value=0, max_value=10**6)}
            ),
        }
    ),
    max_size=40,
)


def _rows(
    stream: list[tuple[int, int, dict[str, Any]]], start: dict[str, SubjectRow] | None = None, committed: int = 0
) -> dict[str, SubjectRow]:
    rows = dict(start or {})
    for partition, offset, event in stream:
        subject = event["subject"]
        if subject is None:
            assert fold(None, AuditEvent.from_json(event), partition, offset, committed) is None
            continue
        row = fold(rows.get(subject), AuditEvent.from_json(event), partition, offset, committed)
        assert row is not None
        rows[subject] = row
    return rows


def _positioned(evts: list[dict[str, Any]]) -> list[tuple[int, int, dict[str, Any]]]:
    return [(0, offset, event) for offset, event in enumerate(evts)]


@given(events, st.integers(min_value=0, max_value=40))
def test_reading_the_audit_again_from_any_offset_changes_no_row(evts: list[dict[str, Any]], restart: int) -> None:
    stream = _positioned(evts)
    once = _rows(stream)
    assert _rows(stream[restart:], start=once) == once  # a restarted consumer, from an older commit
    assert _rows(stream, start=once) == once  # a replay of the whole topic


@given(st.data())
def test_events_read_again_in_any_order_after_a_rebalance_change_no_row(data: st.DataObject) -> None:
    """faust may hand an agent a partition's messages out of order around a rebalance: one skipped,
    later ones folded, then everything from the committed offset read again. Rows end the same."""
    stream = _positioned(data.draw(events))
    committed = data.draw(st.integers(min_value=0, max_value=len(stream)))
    read = data.draw(st.permutations(stream[committed:]))
    again = data.draw(st.lists(st.sampled_from(stream[committed:]), max_size=10)) if stream[committed:] else []
    once = _rows(stream)
    before_the_commit = _rows(stream[:committed])
    after = _rows([*read, *again], start=before_the_commit, committed=committed)
    assert {s: r.exposures for s, r in after.items()} == {s: r.exposures for s, r in once.items()}
    written = {e["subject"] for _, _, e in read if e["subject"]}  # rows written after the commit ...
    assert all(o >= committed for s in written for _, o in after[s].applied)  # ... forget what precedes it


@given(events)
def test_a_row_groups_what_every_event_says(evts: list[dict[str, Any]]) -> None:
    rows = _rows(_positioned(evts))
    for subject in SUBJECTS:
        expected: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for event in evts:
            if event["subject"] != subject:
                continue
            for recipient, what in event["recipients"].items() if event["status"] == "shared" else ():
                group = (recipient, event["policy_version"], tuple(what["items"]), tuple(what["purposes"]))
                expected[(*group, "joint_use", ())].append(event["processed_at_ms"])
            for channel, p in event["provisions"].items():  # whatever joint use decided
                group = (channel, event["policy_version"], tuple(p["items"]), tuple(p["purposes"]))
                expected[(*group, p["basis"], tuple(p["fields"]))].append(event["processed_at_ms"])
        row = rows.get(subject, SubjectRow(subject))
        assert {e.group: (e.first_at_ms, e.last_at_ms, e.deliveries) for e in row.exposures} == {
            group: (min(times), max(times), len(times)) for group, times in expected.items()
        }


@given(events)
def test_the_index_and_the_scanned_report_name_the_same_deliveries(evts: list[dict[str, Any]]) -> None:
    subjects = frozenset({"s1", "s2"})
    scanned = exposures_of([AuditEvent.from_json(e) for e in evts], subjects)
    rows = _rows(_positioned(evts))
    from_rows = exposures_of_rows(rows[s] for s in sorted(subjects) if s in rows)
    assert len(scanned) == len(from_rows) and set(scanned) == set(from_rows)
    assert sum(e.deliveries for e in scanned) == sum(
        len(e["recipients"]) for e in evts if e["subject"] in subjects and e["status"] == "shared"
    ) + sum(len(e["provisions"]) for e in evts if e["subject"] in subjects)


@given(events)
def test_a_row_survives_its_table_encoding(evts: list[dict[str, Any]]) -> None:
    for row in _rows(_positioned(evts)).values():
        assert SubjectRow.from_json(json.loads(json.dumps(row.to_json()))) == row


def test_events_of_another_partition_are_not_taken_for_replays() -> None:
    event = AuditEvent.from_json(
        {"subject": "s1", "status": "shared", "recipients": {"jcom": {"items": ["name"], "purposes": []}}}
    )
    row = fold(fold(None, event, 0, 10), event, 1, 3)  # the topic grew: the subject's next event elsewhere
    assert row is not None and row.exposures[0].deliveries == 2
    assert row.applied == ((0, 10), (1, 3))
    assert fold(row, event, 1, 3) == row


def test_a_correction_is_filed_once_and_tells_which_recipients_a_delivery_reached_since() -> None:
    from streams.rights.core.subject_index import Correction, correction_delivered, fold_correction

    def shared(recipient: str, at_ms: int) -> AuditEvent:
        return AuditEvent.from_json(
            {
                "subject": "s1",
                "status": "shared",
                "processed_at_ms": at_ms,
                "recipients": {recipient: {"items": ["name"], "purposes": ["jointuse.billing"]}},
                "input": {"topic": "in", "offset": at_ms},
            }
        )

    row = fold(None, shared("jcom-insurance", 1_000), 0, 0)
    row = fold(row, shared("jcom", 1_000), 0, 1)
    correction = Correction("c1", "jcom-mobile", 2_000)
    assert row is not None
    corrected = fold_correction(row, "s1", correction)
    assert fold_correction(corrected, "s1", correction) == corrected  # idempotent
    assert correction_delivered(corrected, correction) == {"jcom": False, "jcom-insurance": False}
    later = fold(corrected, shared("jcom-insurance", 3_000), 0, 2)
    assert later is not None and later.corrections == (correction,)  # a delivery keeps the correction
    assert correction_delivered(later, correction) == {"jcom": False, "jcom-insurance": True}
    assert SubjectRow.from_json(later.to_json()) == later
