"""The ingest processor without a broker: governed schemas, poison input, the clock, pseudonyms."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.audit.core.event import AuditEvent
from streams.errors import RegistryError
from streams.messages import (
    H_DETAIL,
    H_ITEMS,
    H_POLICY_VERSION,
    H_PURPOSES,
    H_REASON,
    H_SOURCE,
    H_TRACE_ID,
    InMessage,
    Outcome,
    Run,
    trace_id,
)
from streams.policy.classification import PROTECTED_CLASSES, FieldClass
from streams.policy.engine import DEFAULT_MAX_CLOCK_SKEW
from streams.policy.loader import PolicySet
from streams.policy.pseudonym import SubjectKeys
from streams.processors.ingest import Deciding, Processor
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedSchemas
from streams.serde.wire import frame, unframe
from streams.settings import PROJECT_ROOT
from streams.topology import Topology
from tests.memory_registry import MemoryRegistry
from tests.policy.test_shared_projections import group_policies
from tests.records import make_native_records

T = Topology("t")
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
KEYS = SubjectKeys(b"a-test-subject-key-of-some-length")
GOVERNED = GovernedSchemas.load(PROJECT_ROOT / "schemas")
V1 = GOVERNED.versions[0].classified.raw
SECRET = "SECRET-"


def _processor(
    policies: PolicySet,
    registry: MemoryRegistry,
    *,
    is_stopped: Callable[[str, str], bool] = lambda source, key: False,
    max_clock_skew: dt.timedelta = DEFAULT_MAX_CLOCK_SKEW,
) -> Processor:
    deciding = Deciding(policies, max_clock_skew=max_clock_skew)
    return Processor(Run(T, KEYS), deciding, GOVERNED, registry, now=lambda: NOW, is_stopped=is_stopped)


def _record(**changes: Any) -> dict[str, Any]:
    record = make_native_records(1, seed=5)[0]
    record.update(source_company="jcom")
    record["consent"] = {"marketing_opt_out": False, "joint_use_stop": False, "foreign_transfer_consent": False}
    record["call_records"] = [{"started_at": 1, "callee_number": SECRET + "callee", "duration_s": 3}]
    record["medical_history"] = SECRET + "medical"
    record["claims"] = [{"claim_no": SECRET + "claim", "amount_jpy": 5, "diagnosis": SECRET + "diagnosis"}]
    record.update(changes)
    return record


def _message(
    registry: MemoryRegistry, record: dict[str, Any], schema: dict[str, Any] = V1, offset: int = 0
) -> InMessage:
    schema_id = registry.register(f"{T.ingest('jcom')}-value", schema)
    value = frame(schema_id, AvroCodec(schema).encode(record))
    return InMessage(T.ingest("jcom"), 0, offset, record["customer_id"].encode(), value, 0)


def _audit(outcome: Outcome) -> dict[str, Any]:
    (event,) = [json.loads(m.value or b"") for m in outcome.messages if m.topic == T.audit]
    assert AuditEvent.from_json(event).to_json() == orjson.dumps(event)  # every event is one of the type
    return event


def _delivered(outcome: Outcome) -> list[bytes]:
    return [m.value or b"" for m in outcome.messages if m.topic.startswith("t.deliver.")]


def _relabelled(schema: dict[str, Any]) -> dict[str, Any]:
    """The attack: the canonical schema with every protected field labelled a shareable item."""
    raw = copy.deepcopy(schema)

    def relabel(fields: list[dict[str, Any]]) -> None:
        for spec in fields:
            if spec.get("jointuse.class") in {c.value for c in PROTECTED_CLASSES} | {"consent", "metadata"}:
                spec["jointuse.class"], spec["jointuse.item"] = FieldClass.ITEM.value, "name"
            for inner in spec["type"] if isinstance(spec["type"], list) else [spec["type"]]:
                if isinstance(inner, dict):
                    nested = inner.get("items", inner)
                    if isinstance(nested, dict) and "fields" in nested:
                        relabel(nested["fields"])

    relabel(raw["fields"])
    return raw


def test_a_relabelled_writer_schema_is_read_with_the_governed_labels(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    processor = _processor(policies, registry)
    outcome = processor.process(_message(registry, _record(), _relabelled(dict(V1))))
    assert outcome.status.value == "shared"
    deliveries = _delivered(outcome)
    assert deliveries and all(SECRET.encode() not in value for value in deliveries)
    assert ("medical_history", "sensitive") in outcome.dropped
    assert processor.reader.reading(1).resolved is False  # the fast path: same canonical form


def test_a_writer_with_extra_fields_is_resolved_and_its_extras_never_leave(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    writer = _relabelled(dict(V1))
    writer["fields"].append(
        {
            "name": "call_audio",
            "type": ["null", "string"],
            "default": None,
            "jointuse.class": "item",
            "jointuse.item": "name",
        }
    )
    outcome = _processor(policies, registry).process(_message(registry, _record(call_audio=SECRET + "audio"), writer))
    assert outcome.status.value == "shared"
    assert all(SECRET.encode() not in value for value in _delivered(outcome))


def test_a_writer_that_resolves_into_no_governed_version_is_an_ungoverned_dead_letter(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    writer = copy.deepcopy(dict(V1))
    next(f for f in writer["fields"] if f["name"] == "name")["type"] = "long"  # string cannot be read from long
    outcome = _processor(policies, registry).process(_message(registry, _record(name=7), writer))
    assert outcome.reason == "ungoverned_schema"
    (dead,) = [m for m in outcome.messages if m.topic == T.dead_letters("jcom")]
    assert dict(dead.headers)[H_REASON] == b"ungoverned_schema"
    assert _audit(outcome)["reason"] == "ungoverned_schema"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"updated_at": 2**62}, "out_of_range at updated_at"),
        ({"updated_at": -(2**62)}, "out_of_range at updated_at"),
        ({"birth_date": 2**31 - 1}, "out_of_range at birth_date"),
        (
            {"payment_status": {"status": "paid", "last_paid_at": 2**63 - 1, "overdue_amount_jpy": 0}},
            "out_of_range at payment_status.last_paid_at",
        ),
    ],
)
def test_times_no_calendar_holds_are_schema_violations_and_the_next_record_goes_on(
    policies: PolicySet, changes: dict[str, Any], detail: str
) -> None:
    registry = MemoryRegistry()
    processor = _processor(policies, registry)
    poison = processor.process(_message(registry, _record(**changes)))
    assert (poison.status.value, poison.reason) == ("invalid", "schema_violation")
    (dead,) = [m for m in poison.messages if m.topic == T.dead_letters("jcom")]
    assert dict(dead.headers)[H_DETAIL].decode().startswith(detail)
    assert processor.process(_message(registry, _record(), offset=1)).status.value == "shared"


def test_any_failure_deciding_one_record_makes_it_unprocessable_never_an_exception(policies: PolicySet) -> None:
    registry = MemoryRegistry()

    def broken(source: str, key: str) -> bool:
        raise ValueError(SECRET + "a message that quotes a value")

    outcome = _processor(policies, registry, is_stopped=broken).process(_message(registry, _record()))
    assert outcome.reason == "unprocessable"
    (dead,) = [m for m in outcome.messages if m.topic == T.dead_letters("jcom")]
    assert dict(dead.headers)[H_DETAIL] == b"ValueError"  # the class only, never the message
    assert SECRET not in json.dumps(_audit(outcome))


def test_a_registry_that_does_not_answer_is_not_the_records_fault(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    message = _message(registry, _record())
    registry.down = True
    with pytest.raises(RegistryError):
        _processor(policies, registry).process(message)


def test_future_records_are_invalid_beyond_the_skew(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    processor = _processor(policies, registry, max_clock_skew=dt.timedelta(minutes=5))
    millis = int(NOW.timestamp() * 1000)
    within = processor.process(_message(registry, _record(updated_at=millis + 4 * 60_000)))
    beyond = processor.process(_message(registry, _record(updated_at=millis + 6 * 60_000), offset=1))
    assert within.status.value == "shared"
    assert (beyond.status.value, beyond.reason) == ("invalid", "future_timestamp")


def test_audit_subjects_are_keyed_pseudonyms(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    record = _record()
    event = _audit(_processor(policies, registry).process(_message(registry, record)))
    unkeyed = hashlib.sha256(f"jcom\x00{record['customer_id']}".encode()).hexdigest()[:32]
    assert event["subject"] == KEYS.subject("jcom", record["customer_id"]) != unkeyed
    assert event["subject_key_id"] == KEYS.key_id
    other = SubjectKeys(b"another-subject-key-entirely")
    assert other.subject("jcom", record["customer_id"]) != event["subject"]


def test_a_projector_fault_is_caught_by_the_canary_and_recorded_in_the_audit(
    policies: PolicySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in the projection (simulated: every delivery gets the sensitive field back) is caught
    by the independent canary; nothing is delivered, and the audit event names what was caught
    (recipients and classes, never a value), so an incident can be resolved from the audit."""
    from dataclasses import replace

    registry = MemoryRegistry()
    processor = _processor(policies, registry)
    message = _message(registry, _record())
    engine = processor._judges[GOVERNED.versions[0].name].engine
    decide = engine.decide

    def faulty(*args: Any, **kwargs: Any) -> Any:
        decision = decide(*args, **kwargs)
        leaked = {
            r: replace(d, record={**d.record, "medical_history": SECRET + "medical"})
            for r, d in decision.deliveries.items()
        }
        return replace(decision, deliveries=leaked)

    monkeypatch.setattr(engine, "decide", faulty)
    outcome = processor.process(message)
    assert outcome.reason == "leak_canary" and _delivered(outcome) == []
    event = _audit(outcome)
    assert event["reason"] == "leak_canary"
    assert event["leaks"] == [{"recipient": "jcom-insurance", "class": "sensitive"}]
    assert SECRET not in json.dumps(event)
    # The same transaction opens the day's incident and tells the source company which customer.
    (hit,) = [m for m in outcome.messages if m.topic == T.incidents]
    (notice,) = [m for m in outcome.messages if m.topic == T.notices("jcom")]
    incident_id = f"canary-20260601-{event['policy_version']}"
    assert hit.key == incident_id.encode()
    assert json.loads(hit.value or b"") | {"at_ms": 0} == {
        "type": "canary_hit",
        "incident_id": incident_id,
        "at_ms": 0,
        "subject": event["subject"],
        "source": "jcom",
        "policy_version": event["policy_version"],
        "input": {"topic": T.ingest("jcom"), "partition": 0, "offset": 0},
        "leaks": [{"recipient": "jcom-insurance", "class": "sensitive"}],
    }
    told = json.loads(notice.value or b"")
    assert (told["type"], told["recipient"], told["subject_key"]) == (
        "leak_incident",
        "jcom",
        f"jcom:{_record()['customer_id']}",
    )
    assert (told["recipients"], told["classes"], told["blocked"]) == (["jcom-insurance"], ["sensitive"], True)
    for written in outcome.messages:
        if written.topic != T.dead_letters("jcom"):  # the raw copy stays in the source's own dead letters
            assert SECRET.encode() not in (written.value or b"")
    monkeypatch.undo()
    healthy = processor.process(message)
    assert "leaks" not in _audit(healthy)
    assert not [m for m in healthy.messages if m.topic in (T.incidents, T.notices("jcom"))]


def test_a_shared_record_adds_its_cells_to_the_statistics_and_a_withheld_one_nothing(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    processor = _processor(policies, registry)
    record = _record(address="東京都千代田区丸の内1-1", gender="female")
    shared = processor.process(_message(registry, record))
    (added,) = [m for m in shared.messages if m.topic == T.stats_contributions]
    assert added.key == KEYS.subject("jcom", record["customer_id"]).encode()
    found = json.loads(added.value or b"")
    assert set(found["tables"]) == {t.id for t in policies.latest.statistics.tables}
    region = found["tables"]["subscribers_by_region"]
    assert [cell[0::2] for cell in region["cells"]] == [["東京都", "female"]]
    assert SECRET.encode() not in (added.value or b"")  # labels from closed lists, never a value
    stopped = _record(consent={"marketing_opt_out": False, "joint_use_stop": True, "foreign_transfer_consent": False})
    withheld = processor.process(_message(registry, stopped, offset=1))
    assert withheld.status.value == "withheld"
    assert not [m for m in withheld.messages if m.topic == T.stats_contributions]


@pytest.mark.parametrize(
    ("updated_at", "counted_on"),
    [
        (NOW + dt.timedelta(minutes=3), NOW),  # within the clock skew the engine allows: counts now
        (NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=30)),  # late: in its own window
    ],
)
def test_a_shared_records_event_time_is_never_ahead_of_now(
    policies: PolicySet, updated_at: dt.datetime, counted_on: dt.datetime
) -> None:
    from streams.policy.calendar import JST

    registry = MemoryRegistry()
    record = _record(updated_at=int(updated_at.timestamp() * 1000))
    outcome = _processor(policies, registry).process(_message(registry, record))
    assert outcome.status.value == "shared"
    (added,) = [m for m in outcome.messages if m.topic == T.stats_contributions]
    found = json.loads(added.value or b"")
    assert found["at_ms"] == int(counted_on.timestamp() * 1000)
    assert found["tables"]["services_daily"]["window"] == counted_on.astimezone(JST).date().isoformat()


PRODUCER_CHOSEN = b"PRODUCER-CHOSEN"
HOSTILE_NAMES = st.sampled_from(
    ["jointuse-trace-id", "jointuse-purposes", "jointuse-recipient", "JointUse-Items", "traceparent", "x-side-channel"]
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(HOSTILE_NAMES, st.binary(max_size=20).map(lambda b: PRODUCER_CHOSEN + b)), max_size=6),
    st.booleans(),
)
def test_no_byte_of_a_producer_s_headers_reaches_any_output(
    policies: PolicySet, headers: list[tuple[str, bytes]], valid: bool
) -> None:
    """Deliveries, dead letters (their headers: the raw copy of the value is the producer's own),
    the audit event and its headers: the pipeline writes every header itself."""
    registry = MemoryRegistry()
    message = _message(registry, _record())
    value = message.value if valid else b"\x01not a framed record"
    outcome = _processor(policies, registry).process(
        InMessage(message.topic, message.partition, message.offset, message.key, value, 0, headers)
    )
    assert outcome.status.value == ("shared" if valid else "invalid")
    for out in outcome.messages:
        for name, value in out.headers:
            raw = value.encode() if isinstance(value, str) else value or b""
            assert PRODUCER_CHOSEN not in raw, (out.topic, name)
            assert name != "x-side-channel"
        if out.topic == T.audit:
            assert PRODUCER_CHOSEN not in (out.value or b"")


class _IdPerSubject(MemoryRegistry):
    """A registry that gives each subject its own id, even for the same schema (a registry may)."""

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        known = self.subjects.get(subject)
        if known:
            return known[-1]
        schema_id = len(self.schemas) + 1
        self.schemas[schema_id] = json.loads(json.dumps(schema))
        self.subjects[subject] = [schema_id]
        return schema_id


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_delivery_holds_its_recipients_record_under_its_topics_schema_id_with_its_own_headers(
    policies: PolicySet, data: Any
) -> None:
    """Recipients of one projection share its encoding, and a route's headers are made once: each
    delivery still holds what its own recipient receives, framed with its own topic's schema id, and
    headers naming its purposes, items and this input's trace, input after input."""
    policy = data.draw(group_policies(policies.latest))
    registry = _IdPerSubject() if data.draw(st.booleans(), label="an id per subject") else MemoryRegistry()
    # Its own governed schemas: their versions remember each topic's delivery id, here of this registry.
    processor = Processor(
        Run(T, KEYS),
        Deciding(PolicySet.of([policy])),
        GovernedSchemas.load(PROJECT_ROOT / "schemas"),
        registry,
        now=lambda: NOW,
    )
    records = [_record(customer_id=f"C{n:07d}", name=f"name {n}") for n in range(3)]
    for offset, record in enumerate([*records, *records]):
        message = _message(registry, record, offset=offset)
        outcome = processor.process(message)
        decision = outcome.decision
        assert decision is not None
        version = processor.reader.decode(message.value).reading.version
        delivered = [m for m in outcome.messages if m.topic.startswith(f"{T.prefix}.deliver.")]
        assert [m.topic for m in delivered] == [T.deliver(r) for r in decision.deliveries]
        for sent, delivery in zip(delivered, decision.deliveries.values(), strict=True):
            schema_id, body = unframe(sent.value)
            assert schema_id == registry.subjects[f"{sent.topic}-value"][-1]
            assert bytes(body) == version.delivery_codec.encode(delivery.record)
            assert sent.key == f"jcom:{record['customer_id']}".encode()
            assert sent.headers == [
                (H_PURPOSES, ",".join(delivery.purposes).encode()),
                (H_POLICY_VERSION, policy.version.encode()),
                (H_SOURCE, b"jcom"),
                (H_TRACE_ID, trace_id(message).encode()),
                (H_ITEMS, ",".join(delivery.items).encode()),
            ]
