"""Property tests: whatever a producer puts in a record, no protected or unknown value reaches any
delivery. Protected values are random strings tagged with a marker no shareable field ever holds."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.policy.classification import PROTECTED_CLASSES, ClassifiedSchema, FieldClass
from streams.policy.decision import Status
from streams.policy.engine import Engine
from tests.records import make_native_records

MARK = "\u2063LEAK\u2063"  # invisible separator: never produced by the generator
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
BASE = make_native_records(20, seed=3)

leaf = st.one_of(
    st.text(max_size=8).map(lambda s: MARK + s),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
junk = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


def _protected_value(node_kind: str) -> st.SearchStrategy[Any]:
    return st.just([MARK + "x"]) if node_kind == "array" else st.just(MARK + "v")


@st.composite
def hostile_records(draw: st.DrawFn, schema: ClassifiedSchema) -> dict[str, Any]:
    record = json.loads(json.dumps(draw(st.sampled_from(BASE))))
    # Random extra fields at the top level and inside nested shareable records.
    for key, value in draw(st.dictionaries(st.text(min_size=1, max_size=10), junk, max_size=4)).items():
        if key not in record:
            record[key] = value
    for element in record.get("service_usage") or []:
        element.update(
            {
                k: v
                for k, v in draw(st.dictionaries(st.text(min_size=1, max_size=5), junk, max_size=2)).items()
                if k not in element
            }
        )
    for key, value in draw(st.dictionaries(st.text(min_size=1, max_size=5), junk, max_size=2)).items():
        if key not in record["payment_status"]:
            record["payment_status"][key] = value
    # Protected values in every protected field that is a plain string, with a marker.
    for node in schema.fields:
        if node.cls in PROTECTED_CLASSES and not node.children and draw(st.booleans()):
            if any(b.kind == "string" for b in node.type.branches):
                record[node.name] = MARK + draw(st.text(max_size=5))
            elif any(b.kind == "array" for b in node.type.branches):
                record[node.name] = [MARK + draw(st.text(max_size=5))]
    if draw(st.booleans()):
        record["claims"] = [{"claim_no": MARK, "amount_jpy": 1, "diagnosis": MARK + "d"}]
    if draw(st.booleans()):
        record["call_records"] = [{"started_at": 0, "callee_number": MARK, "duration_s": 1}]
    record["consent"] = {
        "marketing_opt_out": draw(st.booleans()),
        "joint_use_stop": False,
        "foreign_transfer_consent": draw(st.booleans()),
    }
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_protected_or_unknown_value_in_any_delivery(engine: Engine, schema: ClassifiedSchema, data: Any) -> None:
    record = data.draw(hostile_records(schema))
    source = record["source_company"]
    decision = engine.decide(record, source, now=NOW)
    assert decision.status is Status.SHARED, decision.message
    rendered = json.dumps({k: dict(v.record) for k, v in decision.deliveries.items()}, ensure_ascii=False)
    assert MARK not in rendered
    assert MARK not in decision.message
    assert all(MARK not in d.path for d in decision.dropped)
    for delivery in decision.deliveries.values():
        for name in delivery.record:
            node = next(f for f in schema.fields if f.name == name)
            assert node.cls in (FieldClass.IDENTIFIER, FieldClass.ITEM)


@settings(max_examples=200, deadline=None)
@given(value=junk)
def test_arbitrary_values_are_decided_without_exceptions(engine: Engine, value: Any) -> None:
    decision = engine.decide(value, "jcom", now=NOW)
    assert decision.status is Status.INVALID
    assert MARK not in decision.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoded_records_decided_in_trusted_mode_leak_nothing(
    engine: Engine, schema: ClassifiedSchema, data: Any
) -> None:
    """The worker's path: Avro-decoded records skip validation; protected values must still never pass."""
    from streams.serde.avro_codec import AvroCodec

    codec = AvroCodec(schema.raw)
    record = data.draw(hostile_records(schema))
    known = {f.name for f in schema.fields}
    conformant = {k: v for k, v in record.items() if k in known}
    conformant["payment_status"] = {
        k: v for k, v in conformant["payment_status"].items() if k in ("status", "last_paid_at", "overdue_amount_jpy")
    }
    conformant["service_usage"] = [
        {k: v for k, v in e.items() if k in ("service", "plan", "started_at", "ended_at")}
        for e in conformant["service_usage"] or []
    ]
    decoded = codec.decode(codec.encode(conformant))
    decision = engine.decide(decoded, decoded["source_company"], now=NOW, trusted=True)
    assert decision.status is Status.SHARED
    rendered = json.dumps({k: dict(v.record) for k, v in decision.deliveries.items()}, ensure_ascii=False)
    assert MARK not in rendered
    untrusted = engine.decide(decoded, decoded["source_company"], now=NOW)
    # Same content; a null nested field and an absent one encode alike (null default).
    assert {k: _without_nulls(v.record) for k, v in untrusted.deliveries.items()} == {
        k: _without_nulls(v.record) for k, v in decision.deliveries.items()
    }
    assert untrusted.dropped == decision.dropped


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
