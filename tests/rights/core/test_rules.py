"""Rights requests, the rights state, disclosures and retention expiry: pure values."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from streams.audit.core.event import AuditEvent
from streams.policy.loader import PolicySet
from streams.rights.core.rules import (
    InvalidRightsRequest,
    RightsAction,
    RightsRequest,
    RightsState,
    erasure_notice,
    expired,
    parse_request,
    retention_of,
)
from streams.rights.core.subject_index import exposures_of

AT = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


def request(action: RightsAction, customer: str = "C1", source: str = "jcom") -> RightsRequest:
    return RightsRequest(request_id="r1", action=action, customer_id=customer, source=source, requested_at=AT)


def test_latest_request_per_subject_wins() -> None:
    state = RightsState()
    assert not state.is_stopped("jcom", "C1")
    state.apply("jcom:C1", request(RightsAction.STOP))
    assert state.is_stopped("jcom", "C1")
    assert not state.is_stopped("jcom-insurance", "C1")  # the same id at another company is another subject
    state.apply("jcom:C1", request(RightsAction.RESUME))
    assert not state.is_stopped("jcom", "C1")
    state.apply("jcom:C1", request(RightsAction.ERASE))
    assert state.is_stopped("jcom", "C1")  # erasure stops use as well
    state.apply("jcom:C1", None)  # a tombstone in the rights topic forgets the subject
    assert len(state) == 0


def test_request_round_trip_and_bad_values_name_fields_not_values() -> None:
    original = request(RightsAction.ERASE, customer="C99")
    assert parse_request(original.to_bytes()) == original
    assert original.key == "jcom:C99"
    with pytest.raises(InvalidRightsRequest) as caught:
        parse_request(json.dumps({"request_id": "x", "action": "explode", "customer_id": "SECRET-1"}).encode())
    message = str(caught.value)
    assert "action" in message and "source" in message and "requested_at" in message
    assert "SECRET" not in message and "explode" not in message
    with pytest.raises(InvalidRightsRequest):
        parse_request(b"\xff not json")
    with pytest.raises(InvalidRightsRequest):  # a naive time is refused: requests must be placed in time
        parse_request(original.model_dump_json().replace("+00:00", "").replace("Z", "").encode())


def _event(subject: str, status: str, recipients: dict[str, list[str]], at_ms: int) -> dict[str, object]:
    return {
        "subject": subject,
        "status": status,
        "recipients": {r: {"purposes": ["jointuse.billing"], "items": items} for r, items in recipients.items()},
        "policy_version": "2026-01",
        "processed_at_ms": at_ms,
        "input": {"topic": "t", "partition": 0, "offset": at_ms},
    }


def test_disclosures_keep_only_the_subjects_shared_events_oldest_first() -> None:
    events = [
        AuditEvent.from_json(e)
        for e in (
            _event("a", "shared", {"jcom": ["name"]}, 2_000),
            _event("a", "withheld", {}, 3_000),
            _event("b", "shared", {"jcom-insurance": ["email"]}, 1_000),
            _event("a", "shared", {"jcom-insurance": ["name", "email"]}, 1_000),
        )
    ]
    found = exposures_of(events, frozenset({"a"}))
    assert [(d.recipient, d.items) for d in found] == [("jcom-insurance", ("name", "email")), ("jcom", ("name",))]
    assert found[0].first_at_ms == 1_000
    assert exposures_of(events, frozenset({"nobody"})) == ()


def test_erasure_notice_names_request_recipient_and_subject_key() -> None:
    notice = json.loads(erasure_notice(request(RightsAction.ERASE), "jcom-insurance", issued_at=AT))
    assert notice == {
        "type": "erasure",
        "request_id": "r1",
        "recipient": "jcom-insurance",
        "subject_key": "jcom:C1",
        "source": "jcom",
        "requested_at": AT.isoformat(),
        "issued_at": AT.isoformat(),
    }


def test_retention_is_the_shortest_among_delivered_items(policies: PolicySet) -> None:
    policy = policies.latest
    five_years = dt.timedelta(days=5 * 365)
    assert retention_of(policy, ["name", "email"]) == five_years
    short = policy.model_copy(
        update={
            "items": tuple(i.model_copy(update={"retention": "P30D"}) if i.id == "email" else i for i in policy.items)
        }
    )
    assert retention_of(short, ["name", "email"]) == dt.timedelta(days=30)
    assert retention_of(short, ["name"]) == five_years
    # An item an older version named gets the shortest retention: never kept longer than any known item.
    assert retention_of(short, ["name", "retired_item"]) == dt.timedelta(days=30)
    assert retention_of(short, []) is None
    delivered = AT
    assert not expired(short, ["name", "email"], delivered, delivered + dt.timedelta(days=29))
    assert expired(short, ["name", "email"], delivered, delivered + dt.timedelta(days=30))
    assert not expired(short, ["name"], delivered, delivered + dt.timedelta(days=30))
    assert not expired(short, [], delivered, delivered + dt.timedelta(days=10_000))


def test_a_request_says_who_filed_it_and_how_it_was_verified() -> None:
    from pydantic import ValidationError

    from streams.rights.core.rules import FiledBy, Requester, RightsAction, RightsRequest, parse_request

    at = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    parent = Requester(
        filed_by=FiledBy.LEGAL_REPRESENTATIVE,
        identity_verified_by="運転免許証",
        authority="戸籍謄本",
        subject_is_minor=True,
    )
    request = RightsRequest(
        request_id="r1", action=RightsAction.STOP, customer_id="C1", source="jcom", requested_at=at, requester=parent
    )
    assert parse_request(request.to_bytes()) == request
    assert parent.describe() == (
        "requested by: legal representative of a minor; identity verified by: 運転免許証; authority: 戸籍謄本"
    )
    # A request filed before the requester was recorded still reads, as the person's, unverified.
    legacy = json.loads(request.to_bytes())
    del legacy["requester"]
    assert parse_request(json.dumps(legacy).encode()).requester.describe() == (
        "requested by: subject; identity verified by: not recorded"
    )
    with pytest.raises(ValidationError, match="a minor's request is filed by a legal representative"):
        Requester(identity_verified_by="x", subject_is_minor=True)
    with pytest.raises(ValidationError, match="names its proof of authority"):
        Requester(filed_by=FiledBy.AUTHORISED_AGENT, identity_verified_by="x")
