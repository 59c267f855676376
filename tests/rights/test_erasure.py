"""The erasure side's processor with index rows folded from audit events in memory: outputs per
request kind (no broker)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from streams.audit.core.event import AuditEvent
from streams.errors import SubjectIndexUnavailable
from streams.messages import H_REASON, InMessage
from streams.policy.pseudonym import SubjectKeys
from streams.rights.core.erasure import H_REQUEST_ID, ErasureStatus
from streams.rights.core.rules import RightsAction, RightsRequest
from streams.rights.core.subject_index import SubjectRow, fold
from streams.rights.erasure import RightsProcessor
from streams.topology import Topology

T = Topology("p")
OLD_KEY, KEY = b"an-older-subject-key", b"the-current-subject-key"
KEYS = SubjectKeys(KEY, previous=(OLD_KEY,))
AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _message(value: bytes | None, key: bytes | None = b"jcom:C1") -> InMessage:
    return InMessage(T.rights, 0, 7, key, value, 0)


def _request(action: RightsAction) -> bytes:
    return RightsRequest(request_id="r1", action=action, customer_id="C1", source="jcom", requested_at=AT).to_bytes()


def _processor(
    events: list[Mapping[str, Any]],
    superseded: Callable[[InMessage], bool] = lambda message: False,
) -> RightsProcessor:
    rows: dict[str, SubjectRow | None] = {}
    for offset, event in enumerate(events):
        rows[event["subject"]] = fold(rows.get(event["subject"]), AuditEvent.from_json(event), 0, offset)

    def lookup(subjects: frozenset[str]) -> list[SubjectRow]:
        return [row for subject, row in rows.items() if subject in subjects and row is not None]

    return RightsProcessor(
        topology=T,
        rows=lookup,
        subjects=KEYS,
        superseded=superseded,
        now=lambda: AT,
    )


def _shared(recipient: str, key: bytes = KEY) -> dict[str, Any]:
    return {
        "subject": SubjectKeys(key).subject("jcom", "C1"),
        "status": "shared",
        "recipients": {recipient: {"purposes": ["jointuse.billing"], "items": ["name"]}},
        "processed_at_ms": 1,
        "input": {"topic": T.ingest("jcom"), "offset": 3},
    }


def test_erasure_reaches_the_standing_channels_the_subject_was_provided_to() -> None:
    provided = {
        **_shared("jcom"),
        "status": "withheld",
        "recipients": {},
        "provisions": {
            "claims-investigator": {
                "basis": "entrustment",
                "purposes": ["insurer.claims_payment"],
                "items": ["name"],
                "fields": ["policy"],
            },
            "counsel": {
                "basis": "professional",
                "purposes": ["insurer.claims_payment"],
                "items": ["name"],
                "fields": [],
            },
            "example-re-us": {
                "basis": "foreign",
                "purposes": ["insurer.reinsurance"],
                "items": ["name"],
                "fields": ["policy"],
            },
        },
    }
    outcome = _processor([provided]).process(_message(_request(RightsAction.ERASE)))
    # The entrustee's and the reinsurer abroad's copies are tombstoned and each is told; a lawyer's
    # case has no topic (its request's procedure erases it).
    assert {m.topic for m in outcome.messages} == {
        T.provide("claims-investigator"),
        T.notices("claims-investigator"),
        T.provide("example-re-us"),
        T.notices("example-re-us"),
    }


def test_erasure_tombstones_each_recipient_reached_and_notifies_it() -> None:
    processor = _processor([_shared("jcom-insurance"), _shared("jcom-insurance")])
    outcome = processor.process(_message(_request(RightsAction.ERASE)))
    assert outcome.status is ErasureStatus.ERASED and outcome.reason == "erase"
    by_topic = {m.topic: m for m in outcome.messages}
    assert set(by_topic) == {T.deliver("jcom-insurance"), T.notices("jcom-insurance")}
    tombstone = by_topic[T.deliver("jcom-insurance")]
    assert tombstone.key == b"jcom:C1" and tombstone.value is None
    assert dict(tombstone.headers)[H_REQUEST_ID] == b"r1"
    notice = json.loads(by_topic[T.notices("jcom-insurance")].value or b"")
    assert notice["type"] == "erasure" and notice["subject_key"] == "jcom:C1" and notice["request_id"] == "r1"


def test_erasure_finds_events_pseudonymised_under_an_earlier_key() -> None:
    processor = _processor([_shared("jcom-insurance", key=OLD_KEY)])
    outcome = processor.process(_message(_request(RightsAction.ERASE)))
    assert {m.topic for m in outcome.messages} == {T.deliver("jcom-insurance"), T.notices("jcom-insurance")}


def test_stop_resume_and_unreached_subjects_write_nothing() -> None:
    processor = _processor([])
    for action in (RightsAction.STOP, RightsAction.RESUME, RightsAction.ERASE):
        outcome = processor.process(_message(_request(action)))
        assert outcome.messages == () and outcome.status is not ErasureStatus.INVALID
    assert processor.process(_message(None)).messages == ()  # a tombstone in the rights topic


def test_bad_requests_go_to_the_rights_dead_letters_with_their_raw_copy() -> None:
    processor = _processor([])
    for message, reason in [
        (_message(b"{not json"), "invalid_rights_request"),
        (_message(_request(RightsAction.STOP), key=b"jcom:C2"), "key_mismatch"),
        (_message(_request(RightsAction.STOP), key=None), "key_mismatch"),
    ]:
        outcome = processor.process(message)
        assert outcome.status is ErasureStatus.INVALID and outcome.reason == reason
        (dead,) = outcome.messages
        assert dead.topic == T.dead_letters("rights") and dead.value == message.value
        assert dict(dead.headers)[H_REASON] == reason.encode()


def test_an_erasure_superseded_during_its_grace_writes_nothing() -> None:
    processor = _processor([_shared("jcom-insurance")], superseded=lambda message: True)
    outcome = processor.process(_message(_request(RightsAction.ERASE)))
    assert (outcome.status, outcome.reason, outcome.messages) == (ErasureStatus.NOTHING_WRITTEN, "superseded", ())


def test_an_index_outage_propagates_for_the_batch_to_wait_again() -> None:
    def down(subjects: frozenset[str]) -> list[SubjectRow]:
        raise SubjectIndexUnavailable("the subject index is behind the audit topic")

    processor = RightsProcessor(topology=T, rows=down, subjects=KEYS, now=lambda: AT)
    with pytest.raises(SubjectIndexUnavailable):
        processor.process(_message(_request(RightsAction.ERASE)))


def test_a_failing_request_is_an_unprocessable_dead_letter() -> None:
    def broken(subjects: frozenset[str]) -> list[SubjectRow]:
        raise KeyError("C1")  # a lookup bug, not an outage

    processor = RightsProcessor(topology=T, rows=broken, subjects=KEYS, now=lambda: AT)
    outcome = processor.process(_message(_request(RightsAction.ERASE)))
    (dead,) = outcome.messages
    assert (outcome.reason, dict(dead.headers)["jointuse-error-detail"]) == ("unprocessable", b"KeyError")
