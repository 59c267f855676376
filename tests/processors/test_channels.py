"""The ingest processor provides the insurer's records to its standing channels (#30) in the input's
transaction: each channel's delivery, its provision record or supervision entry, one audit event."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streams.audit.core.event import AuditEvent
from streams.messages import H_BASIS, H_FIELDS, H_PURPOSES, InMessage, Outcome, Run
from streams.policy.decision import Status
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.processors.ingest import Deciding, Processor
from streams.serde.avro_codec import AvroCodec
from streams.serde.wire import frame, unframe
from tests.memory_registry import MemoryRegistry
from tests.policy.test_handling import INVESTIGATOR, _with_channels
from tests.policy.test_provide import ASSOCIATION, EXCHANGED, IDENTIFIERS, LAWYER, REINSURED, REINSURER
from tests.processors.test_ingest import GOVERNED, KEYS, NOW, SECRET, V1, T, _record

POLICIES = PolicySet.of([Policy.model_validate(_with_channels(INVESTIGATOR, REINSURER, ASSOCIATION, LAWYER))])


def _processor(
    registry: MemoryRegistry,
    *,
    is_stopped: Callable[[str, str], bool] = lambda source, key: False,
    provide_channels: bool = True,
) -> Processor:
    deciding = Deciding(POLICIES, provide_channels=provide_channels)
    return Processor(Run(T, KEYS), deciding, GOVERNED, registry, now=lambda: NOW, is_stopped=is_stopped)


def _insured(**changes: Any) -> dict[str, Any]:
    record = _record(source_company="jcom-insurance", customer_id="jcom-insurance-00000042")
    record["policy"] = {"policy_no": SECRET + "policy", "product": "家財保険", "premium_jpy": 1200, "started_at": 20000}
    record["race"] = SECRET + "race"
    record.update(changes)
    return record


def _message(registry: MemoryRegistry, record: dict[str, Any], company: str = "jcom-insurance") -> InMessage:
    schema_id = registry.register(f"{T.ingest(company)}-value", V1)
    return InMessage(
        T.ingest(company), 0, 7, record["customer_id"].encode(), frame(schema_id, AvroCodec(V1).encode(record)), 0
    )


def _on(outcome: Outcome, topic: str) -> list[Any]:
    return [m for m in outcome.messages if m.topic == topic]


def _decoded(registry: MemoryRegistry, value: bytes | None) -> dict[str, Any]:
    schema_id, body = unframe(value)
    decoded: dict[str, Any] = AvroCodec(registry.schemas[schema_id]).decode(body)
    return {k: v for k, v in decoded.items() if v is not None}


def test_each_channel_gets_its_own_record_with_its_basis_and_records() -> None:
    registry = MemoryRegistry()
    outcome = _processor(registry).process(_message(registry, _insured()))
    assert outcome.status is Status.SHARED  # the joint-use decision: jcom gets its items
    (claim_file,) = _on(outcome, T.provide("claims-investigator"))
    received = _decoded(registry, claim_file.value)
    assert received["medical_history"] == SECRET + "medical"  # sensitive, for claims payment, named
    assert received["claims"][0]["diagnosis"] == SECRET + "diagnosis"
    assert "race" not in received and "call_records" not in received and "email" not in received
    headers = dict(claim_file.headers)
    assert headers[H_BASIS] == b"entrustment" and headers[H_PURPOSES] == b"insurer.claims_payment"
    assert b"medical_history" in headers[H_FIELDS] and b"claims[].diagnosis" in headers[H_FIELDS]
    (reinsured,) = _on(outcome, T.provide("domestic-re"))
    assert set(_decoded(registry, reinsured.value)) == IDENTIFIERS | REINSURED
    (association,) = _on(outcome, T.provide("ssi-association"))
    assert set(_decoded(registry, association.value)) - IDENTIFIERS == EXCHANGED
    assert _on(outcome, T.provide("counsel")) == []  # case by case: never a standing delivery
    # A provision record for each consent-based third party; a supervision entry for the entrustee.
    records = [orjson.loads(m.value) for m in _on(outcome, T.provision_records)]
    assert sorted(r["recipient"] for r in records) == ["domestic-re", "ssi-association"]
    assert all(r["consent"] and r["subject"] and SECRET not in json.dumps(r) for r in records)
    (supervised,) = [orjson.loads(m.value) for m in _on(outcome, T.supervision)]
    assert (supervised["recipient"], supervised["contract"]) == ("claims-investigator", "ENT-2026-004")
    assert supervised["fields"] and SECRET not in json.dumps(supervised)
    (audit,) = _on(outcome, T.audit)
    event = AuditEvent.from_json(audit.value)
    assert set(event.provisions) == {"claims-investigator", "domestic-re", "ssi-association"}
    assert event.provisions["claims-investigator"].basis == "entrustment"
    assert "medical_history" in event.provisions["claims-investigator"].fields
    assert AuditEvent.from_json(event.to_json()) == event


def test_another_companys_record_reaches_no_channel() -> None:
    registry = MemoryRegistry()
    record = _insured(source_company="jcom", customer_id="jcom-00000042")
    outcome = _processor(registry).process(_message(registry, record, company="jcom"))
    assert not [m for m in outcome.messages if m.topic.startswith("t.provide.")]
    assert not _on(outcome, T.provision_records) and not _on(outcome, T.supervision)
    (audit,) = _on(outcome, T.audit)
    assert "provisions" not in orjson.loads(audit.value)


def test_a_record_without_a_contract_goes_only_where_no_consent_is_needed() -> None:
    registry = MemoryRegistry()
    outcome = _processor(registry).process(_message(registry, _insured(policy=None, claims=None)))
    provided = sorted(m.topic for m in outcome.messages if m.topic.startswith("t.provide."))
    assert provided == [T.provide("claims-investigator")]


def test_a_channel_projection_fault_stops_every_delivery_of_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = MemoryRegistry()
    processor = _processor(registry)
    engine = processor._judges["customer_record.v1"].engine
    provide = engine.provide

    def leaky(record: Any, source: str, channel: str, **options: Any) -> Any:
        decision = provide(record, source, channel, **options)
        for delivery in decision.deliveries.values():
            delivery.record["race"] = record["race"]  # type: ignore[index]
        return decision

    monkeypatch.setattr(engine, "provide", leaky)
    outcome = processor.process(_message(registry, _insured()))
    assert outcome.status is Status.INVALID and outcome.reason == "leak_canary"
    assert not [m for m in outcome.messages if m.topic.startswith(("t.provide.", "t.deliver."))]
    assert not _on(outcome, T.provision_records)


def test_the_shipped_policy_has_no_channels_and_writes_what_it_wrote(policies: PolicySet) -> None:
    registry = MemoryRegistry()
    processor = Processor(Run(T, KEYS), Deciding(policies), GOVERNED, registry, now=lambda: NOW)
    outcome = processor.process(_message(registry, _insured()))
    assert {m.topic for m in outcome.messages} == {T.deliver("jcom"), T.audit, T.stats_contributions}


def test_provisions_are_counted_by_channel_and_basis() -> None:
    from prometheus_client import CollectorRegistry

    from streams.observability.metrics import PipelineMetrics

    registry = MemoryRegistry()
    message = _message(registry, _insured())
    outcome = _processor(registry).process(message)
    assert set(outcome.provisions) == {
        ("claims-investigator", "entrustment"),
        ("domestic-re", "reinsurance"),
        ("ssi-association", "industry_exchange"),
    }
    metrics_registry = CollectorRegistry()
    PipelineMetrics(metrics_registry).observe([(message, outcome), (message, outcome)])
    assert (
        metrics_registry.get_sample_value(
            "jointuse_provisions_total", {"channel": "claims-investigator", "basis": "entrustment"}
        )
        == 2
    )


def test_a_replay_redoes_joint_use_and_provides_to_no_channel() -> None:
    registry = MemoryRegistry()
    outcome = _processor(registry, provide_channels=False).process(_message(registry, _insured()))
    assert outcome.status is Status.SHARED and _on(outcome, T.deliver("jcom"))
    assert not [m for m in outcome.messages if m.topic.startswith("t.provide.")] and outcome.provisions == ()


def test_joint_use_and_the_channels_decide_one_input_under_one_state_of_its_rights() -> None:
    """A stop-of-use request applied while an input is being decided: the rights view is asked once,
    so joint use and every channel see the same answer (never delivered to jcom yet withheld from the
    channels, or the other way round)."""
    answers = iter([True, False, False, False])
    registry = MemoryRegistry()
    outcome = _processor(registry, is_stopped=lambda source, key: next(answers)).process(_message(registry, _insured()))
    assert (outcome.status, outcome.reason) == (Status.WITHHELD, "stop_of_use")
    assert outcome.provisions == ()
    assert dict(outcome.provisions_withheld) == {
        "claims-investigator": "stop_of_use",
        "domestic-re": "stop_of_use",
        "ssi-association": "stop_of_use",
    }


def test_a_channel_that_gets_nothing_of_a_record_says_why() -> None:
    registry = MemoryRegistry()
    outcome = _processor(registry).process(_message(registry, _insured(policy=None, claims=None)))
    assert [c for c, _ in outcome.provisions] == ["claims-investigator"]  # entrustment: no consent needed
    assert dict(outcome.provisions_withheld) == {"domestic-re": "no_consent", "ssi-association": "no_consent"}
