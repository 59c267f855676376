"""The audit event: one type, its wire form round-trips, a bad value names the member and never a
value, and the catalog's schema names exactly the members written."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.audit.core.chain import Link, seal
from streams.audit.core.event import (
    FIELDS,
    AuditEvent,
    Delivered,
    InputPosition,
    InvalidAuditEvent,
    Leak,
    Provided,
    audit_message,
    json_schema,
    readable,
)
from streams.messages import H_TRACE_ID, Decided, InMessage, Run
from streams.policy.decision import Decision, Delivery, DroppedField, Reason, Status
from streams.policy.pseudonym import SubjectKeys
from streams.topology import Topology

_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_texts = st.lists(_names, max_size=3).map(tuple)
_optional = st.none() | _names
_ints = st.integers(min_value=-(2**62), max_value=2**62)

events = st.builds(
    AuditEvent,
    subject=_optional,
    subject_key_id=_optional,
    source=_optional,
    status=st.sampled_from(Status),
    reason=_optional,
    recipients=st.dictionaries(_names, st.builds(Delivered, _texts, _texts), max_size=3),
    purposes=_texts,
    dropped=st.lists(st.builds(DroppedField, _names, _names), max_size=3).map(tuple),
    policy_version=_optional,
    record_policy_version=_optional,
    schema_id=st.none() | _ints,
    input=st.builds(InputPosition, _names, _ints, _ints, st.none() | _ints),
    processed_at_ms=_ints,
    trace_id=_names,
    processed_by=_names,
    leaks=st.lists(st.builds(Leak, _names, _names), max_size=2).map(tuple),
    replay_id=_optional,
)


@given(events)
def test_an_event_survives_its_wire_form_sealed_or_not(event: AuditEvent) -> None:
    value = event.to_json()
    assert AuditEvent.from_json(value) == event
    assert AuditEvent.from_json(seal(value, Link("w", 1, "0" * 64))) == event  # the chain member is ignored


@given(events)
def test_the_catalog_schema_names_every_member_written(event: AuditEvent) -> None:
    written = set(orjson.loads(event.to_json()))
    schema = json_schema()
    assert written <= set(schema["properties"])
    assert set(schema["required"]) <= written
    assert all(schema["properties"][name]["description"] for name in schema["properties"])


def test_the_catalog_lists_the_members_in_wire_order() -> None:
    full = AuditEvent(
        subject="s",
        subject_key_id="k",
        source="jcom",
        status=Status.INVALID,
        reason="leak_canary",
        recipients={},
        purposes=(),
        dropped=(),
        policy_version=None,
        record_policy_version=None,
        schema_id=1,
        input=InputPosition("t", 0, 1, 2),
        processed_at_ms=3,
        trace_id="x",
        processed_by="w",
        leaks=(Leak("jcom-insurance", "sensitive"),),
        replay_id="r",
        provisions={
            "claims-investigator": Provided("entrustment", ("insurer.claims_payment",), ("name",), ("policy",))
        },
        request="BAR-1",
    )
    sealed = orjson.loads(seal(full.to_json(), Link("w", 1, "0" * 64)))
    assert list(sealed) == [name for name, _, _ in FIELDS]


@pytest.mark.parametrize(
    ("value", "member"),
    [
        ({"status": "leaked"}, "status"),
        ({"status": "shared", "subject": 7}, "subject"),
        ({"status": "shared", "recipients": ["SECRET"]}, "recipients"),
        ({"status": "shared", "recipients": {"jcom": "SECRET"}}, "recipients.jcom"),
        ({"status": "shared", "recipients": {"jcom": {"items": "SECRET"}}}, "items"),
        ({"status": "shared", "input": {"topic": "t", "offset": "SECRET"}}, "offset"),
        ({"status": "shared", "processed_at_ms": True}, "processed_at_ms"),
        ({"status": "shared", "provisions": {"counsel": "SECRET"}}, "provisions.counsel"),
        ({"status": "shared", "provisions": {"counsel": {"basis": 3}}}, "basis"),
        ({"status": "invalid", "leaks": [{"recipient": "jcom"}]}, "class"),
    ],
)
def test_a_bad_event_names_the_member_and_the_rule_never_the_value(value: dict[str, object], member: str) -> None:
    with pytest.raises(InvalidAuditEvent) as caught:
        AuditEvent.from_json(orjson.dumps(value))
    assert str(caught.value).startswith(f"{member}:")
    assert "SECRET" not in str(caught.value)


def test_values_that_are_not_events_are_skipped_by_readers() -> None:
    good = AuditEvent.from_json({"status": "withheld", "subject": "s"})
    assert list(readable([b"\xff", None, b"[]", good.to_json(), b'{"status": 1}'])) == [good]


def test_only_a_shared_event_records_deliveries() -> None:
    shared = AuditEvent.from_json({"status": "shared", "recipients": {"jcom": {"items": ["name"], "purposes": ["p"]}}})
    assert list(shared.deliveries()) == [("jcom", Delivered(("p",), ("name",)))]
    withheld = AuditEvent.from_json({"status": "withheld", "recipients": {"jcom": {"items": ["name"]}}})
    assert list(withheld.deliveries()) == []


def test_a_dead_letters_audit_event_records_what_was_decided_but_no_delivery() -> None:
    run = Run(Topology("t"), SubjectKeys(b"a-test-subject-key"), worker_id="w", extra_headers=(("x", b"1"),))
    decision = Decision(
        Status.SHARED,
        Reason.SHARED,
        purposes=("jointuse.billing",),
        deliveries={"jcom": Delivery("jcom", ("jointuse.billing",), ("name",), {})},
        policy_version="2026-01",
        record_policy_version="2026-01",
    )
    at = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    message = InMessage("t.ingest.jcom.customer.v1", 0, 7, b"C1", b"", 0)
    decided = Decided(message, "jcom", "s1", decision, 5, "trace", at)

    shared = AuditEvent.from_json(orjson.loads(audit_message(run, decided).value or b""))
    dead = audit_message(run, decided, reason="leak_canary", leaks=(("jcom", "sensitive"),))
    event = AuditEvent.from_json(orjson.loads(dead.value or b""))

    assert shared.status is Status.SHARED and set(shared.recipients) == {"jcom"}
    assert (event.status, event.reason, event.recipients) == (Status.INVALID, "leak_canary", {})
    assert (event.policy_version, event.record_policy_version, event.purposes) == (
        "2026-01",
        None,
        ("jointuse.billing",),
    )
    assert (event.processed_by, event.schema_id, event.input.offset) == ("w", 5, 7)
    assert event.processed_at_ms == int(at.timestamp() * 1000)
    assert (dead.topic, dead.key, dead.headers) == ("t.audit.v1", b"s1", [(H_TRACE_ID, b"trace"), ("x", b"1")])
