from __future__ import annotations

from streams.policy.canary import LeakCanary
from streams.policy.classification import ClassifiedSchema
from streams.policy.engine import Engine
from tests.records import make_native_records


def test_canary_is_silent_on_real_deliveries(engine: Engine, schema: ClassifiedSchema) -> None:
    canary = LeakCanary(schema)
    checked = 0
    for record in make_native_records(200, seed=4):
        for delivery in engine.decide(record, record["source_company"]).deliveries.values():
            assert canary.inspect(delivery.record) == []
            checked += 1
    assert checked > 150


def test_canary_finds_protected_and_unknown_fields_at_any_depth(schema: ClassifiedSchema) -> None:
    canary = LeakCanary(schema)
    leaked = {
        "customer_id": "c",
        "name": "n",
        "medical_history": "x",
        "claims": [{"claim_no": "1", "amount_jpy": 1}],
        "service_usage": [{"service": "tv", "secret": 1}],
        "payment_status": {"status": "paid", "extra": 2},
        "surprise": 3,
        "call_records": None,  # null holds nothing
    }
    assert sorted(canary.inspect(leaked)) == sorted(
        [
            ("medical_history", "sensitive"),
            ("claims", "insurer_only"),
            ("service_usage[].secret", "unknown"),
            ("payment_status.extra", "unknown"),
            ("surprise", "unknown"),
        ]
    )
