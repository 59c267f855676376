"""Every rule of the engine, one table row each."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from streams.policy.classification import ClassifiedSchema
from streams.policy.decision import Reason, Status
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet, parse_policy
from tests.conftest import POLICY_PATH
from tests.policies import policy_text_without_the_insurer
from tests.records import make_native_records

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
SHAREABLE_TOP = {
    "customer_id",
    "source_company",
    "name",
    "name_kana",
    "address",
    "postal_code",
    "phone",
    "gender",
    "birth_date",
    "email",
    "occupation",
    "service_usage",
    "inquiry_history",
    "viewing_history",
    "payment_status",
}
PROTECTED_TOP = {
    "call_records",
    "communication_logs",
    "message_contents",
    "browsing_history",
    "cell_location_history",
    "race",
    "creed",
    "social_status",
    "medical_history",
    "criminal_record",
    "family_origin",
    "registered_domicile",
    "union_membership",
    "health_checkup",
    "sex_life",
    "policy",
    "claims",
}


def restricted_policy() -> PolicySet:
    """Three joint users; the insurer declared only billing and support; viewing history serves only
    recommendations (a marketing purpose)."""
    text = POLICY_PATH.read_text(encoding="utf-8")
    text = text.replace(
        "  - {id: jcom-insurance, name_ja:",
        "  - {id: jcom-west, name_ja: ジェイコムウエスト株式会社}\n"
        "  - {id: jcom-insurance, purposes: [jointuse.billing, jointuse.support], name_ja:",
    )
    text = text.replace(
        "item_purposes:\n  default: all\n",
        "item_purposes:\n  default: all\n  items:\n    viewing_history: [jointuse.recommendations]\n"
        "    payment_status: [jointuse.billing]\n",
    )
    return PolicySet.of([parse_policy(text, source="restricted.yaml")])


@pytest.fixture(scope="module")
def restricted(schema: ClassifiedSchema) -> Engine:
    return Engine(schema, restricted_policy())


@pytest.fixture
def record() -> dict[str, Any]:
    rec = make_native_records(1, seed=11)[0]
    rec["source_company"] = "jcom"
    rec["consent"] = {"marketing_opt_out": False, "joint_use_stop": False, "foreign_transfer_consent": False}
    rec["call_records"] = [{"started_at": 1, "callee_number": "SECRET-callee", "duration_s": 3}]
    rec["message_contents"] = ["SECRET-body"]
    rec["medical_history"] = "SECRET-medical"
    rec["policy"] = {"policy_no": "SECRET-policy", "product": "x", "premium_jpy": 1, "started_at": None}
    rec["claims"] = [{"claim_no": "SECRET-claim", "amount_jpy": 5, "diagnosis": "SECRET-diagnosis"}]
    return rec


def test_shared_record_keeps_only_identifiers_and_items(engine: Engine, record: dict[str, Any]) -> None:
    decision = engine.decide(record, "jcom", now=NOW)
    assert decision.status is Status.SHARED
    assert set(decision.deliveries) == {"jcom-insurance"}  # the source never gets its own record back
    delivered = decision.deliveries["jcom-insurance"].record
    assert set(delivered) <= SHAREABLE_TOP
    assert not set(delivered) & PROTECTED_TOP
    assert "SECRET" not in repr(delivered)
    assert decision.policy_version == "2026-01"
    assert len(decision.purposes) == 13
    dropped = {(d.path, d.cls) for d in decision.dropped}
    assert ("call_records", "secrecy_of_communications") in dropped
    assert ("medical_history", "sensitive") in dropped
    assert ("claims", "insurer_only") in dropped


@pytest.mark.parametrize(
    ("mutate", "status", "reason", "detail"),
    [
        (lambda r: r.pop("name"), Status.INVALID, Reason.SCHEMA_VIOLATION, "missing_required at name"),
        (lambda r: r.update(name=None), Status.INVALID, Reason.SCHEMA_VIOLATION, "null_not_allowed at name"),
        (
            lambda r: r.update(payment_status=None),
            Status.INVALID,
            Reason.SCHEMA_VIOLATION,
            "null_not_allowed at payment_status",
        ),
        (
            lambda r: r["payment_status"].update(status=7),
            Status.INVALID,
            Reason.SCHEMA_VIOLATION,
            "wrong_type at payment_status.status",
        ),
        (
            lambda r: r.update(birth_date="1980-01-01"),
            Status.INVALID,
            Reason.SCHEMA_VIOLATION,
            "wrong_type at birth_date",
        ),
        (
            lambda r: r["service_usage"].append({"plan": "x"}),
            Status.INVALID,
            Reason.SCHEMA_VIOLATION,
            "missing_required at service_usage[].service",
        ),
        (lambda r: r.update(customer_id=5), Status.INVALID, Reason.SCHEMA_VIOLATION, "wrong_type at customer_id"),
        (
            lambda r: r["consent"].update(marketing_opt_out="yes"),
            Status.INVALID,
            Reason.SCHEMA_VIOLATION,
            "wrong_type at consent.marketing_opt_out",
        ),
        (
            lambda r: r.update(call_records=[{"started_at": "x"}]),
            Status.INVALID,
            Reason.SCHEMA_VIOLATION,
            "call_records[].started_at",
        ),
        (lambda r: r.update(source_company="jcom-insurance"), Status.INVALID, Reason.SOURCE_MISMATCH, ""),
        (lambda r: r["consent"].update(joint_use_stop=True), Status.WITHHELD, Reason.JOINT_USE_STOP, ""),
        (lambda r: r.update(updated_at=0), Status.WITHHELD, Reason.NO_POLICY_IN_FORCE, ""),
    ],
)
def test_rules(
    engine: Engine, record: dict[str, Any], mutate: Any, status: Status, reason: Reason, detail: str
) -> None:
    mutate(record)
    decision = engine.decide(record, "jcom", now=NOW)
    assert (decision.status, decision.reason) == (status, reason)
    assert detail in decision.detail
    assert not decision.deliveries
    assert "SECRET" not in decision.detail and "yes" not in decision.detail


def test_errors_never_echo_values(engine: Engine, record: dict[str, Any]) -> None:
    record["payment_status"]["status"] = ["SECRET-in-a-list"]
    record["phone"] = {"SECRET-key": 1}
    decision = engine.decide(record, "jcom", now=NOW)
    assert decision.status is Status.INVALID
    assert "SECRET" not in decision.message


def test_not_an_object(engine: Engine) -> None:
    for value in (None, [], "x", 3, ["SECRET"]):
        decision = engine.decide(value, "jcom", now=NOW)
        assert (decision.status, decision.reason) == (Status.INVALID, Reason.NOT_AN_OBJECT)


def test_producer_that_is_not_a_joint_user_delivers_nothing(engine: Engine, record: dict[str, Any]) -> None:
    record["source_company"] = "outsider"
    decision = engine.decide(record, "outsider", now=NOW)
    assert (decision.status, decision.reason) == (Status.WITHHELD, Reason.SOURCE_NOT_JOINT_USER)
    assert not decision.deliveries


def test_stop_of_use_request_withholds(engine: Engine, record: dict[str, Any]) -> None:
    decision = engine.decide(record, "jcom", now=NOW, stopped=True)
    assert (decision.status, decision.reason) == (Status.WITHHELD, Reason.STOP_OF_USE)


def test_unknown_fields_never_survive_at_any_depth(engine: Engine, record: dict[str, Any]) -> None:
    record["SECRET_top"] = "SECRET-top"
    record["payment_status"]["SECRET_nested"] = "SECRET-nested"
    record["service_usage"][0]["extra"] = {"deep": "SECRET-deep"}
    record["田中"] = "SECRET-key-is-data"
    decision = engine.decide(record, "jcom", now=NOW)
    assert decision.status is Status.SHARED
    assert "SECRET" not in repr(decision.deliveries)
    paths = [d.path for d in decision.dropped if d.cls == "unknown"]
    # Reported by position, never by name: a key name can carry data.
    top = len(record) - 1  # 田中 is the last key, SECRET_top the one before
    assert sorted(paths) == sorted(
        [
            f"<unknown@{top}>",
            f"<unknown@{top + 1}>",
            f"payment_status.<unknown@{len(record['payment_status'])}>",
            "service_usage[].<unknown@5>",
        ]
    )
    assert not any("SECRET" in p or "田中" in p or "extra" in p for p in paths)


def test_marketing_opt_out_removes_marketing_purposes(engine: Engine, record: dict[str, Any]) -> None:
    record["consent"]["marketing_opt_out"] = True
    decision = engine.decide(record, "jcom", now=NOW)
    policy = engine.policies.latest
    assert decision.status is Status.SHARED
    assert not set(decision.purposes) & policy.marketing_purposes
    assert not set(decision.deliveries["jcom-insurance"].purposes) & policy.marketing_purposes
    assert len(decision.purposes) == 13 - len(policy.marketing_purposes)


def test_each_recipient_gets_only_items_serving_its_purposes(restricted: Engine, record: dict[str, Any]) -> None:
    decision = restricted.decide(record, "jcom", now=NOW)
    assert set(decision.deliveries) == {"jcom-insurance", "jcom-west"}
    insurer = decision.deliveries["jcom-insurance"]
    assert insurer.purposes == ("jointuse.billing", "jointuse.support")
    assert "viewing_history" not in insurer.record  # serves only recommendations, not declared by the insurer
    assert "payment_status" in insurer.record
    west = decision.deliveries["jcom-west"]
    assert "viewing_history" in west.record and "jointuse.recommendations" in west.purposes


def test_opt_out_can_remove_items_and_recipients(restricted: Engine, record: dict[str, Any]) -> None:
    record["consent"]["marketing_opt_out"] = True
    decision = restricted.decide(record, "jcom", now=NOW)
    assert "viewing_history" not in decision.deliveries["jcom-west"].record
    assert "jointuse.recommendations" not in decision.deliveries["jcom-west"].purposes


def test_only_source_and_no_other_joint_user_means_no_recipient(
    schema: ClassifiedSchema, record: dict[str, Any]
) -> None:
    lonely = Engine(schema, PolicySet.of([parse_policy(policy_text_without_the_insurer())]))
    decision = lonely.decide(record, "jcom", now=NOW)
    assert (decision.status, decision.reason) == (Status.WITHHELD, Reason.NO_RECIPIENT)


def test_decide_does_not_modify_its_input(engine: Engine, record: dict[str, Any]) -> None:
    before = copy.deepcopy(record)
    engine.decide(record, "jcom", now=NOW)
    assert record == before


def test_unclassified_field_is_denied(record: dict[str, Any], policies: PolicySet, schema: ClassifiedSchema) -> None:
    from streams.policy.classification import classify

    raw = copy.deepcopy(dict(schema.raw))
    email = next(f for f in raw["fields"] if f["name"] == "email")
    del email["jointuse.class"], email["jointuse.item"]
    unclassified = classify(raw)
    assert [str(v) for v in unclassified.problems] == ["unclassified at email: field has no jointuse.class property"]
    decision = Engine(unclassified, policies).decide(record, "jcom", now=NOW)
    assert "email" not in decision.deliveries["jcom-insurance"].record


def _versions(engine: Engine) -> Engine:
    """Two versions: 2026-07 drops jcom-insurance's declared purposes to billing only and the email item."""
    base = POLICY_PATH.read_text(encoding="utf-8")
    later = (
        base.replace('version: "2026-01"', 'version: "2026-07"')
        .replace("published_at: 2026-01-01", "published_at: 2026-06-01")
        .replace("effective_from: 2026-01-01T00:00:00+09:00", "effective_from: 2026-07-01T00:00:00+09:00")
        .replace(
            "  - {id: jcom-insurance, name_ja:",
            "  - {id: jcom-insurance, purposes: [jointuse.billing], name_ja:",
        )
        .replace('  - {id: email, ja: メールアドレス, en: "Email address", retention: P5Y}\n', "")
    )
    return Engine(engine.schema, PolicySet.of([parse_policy(base), parse_policy(later)]))


def test_the_version_in_force_now_and_at_the_records_time_both_bound_a_delivery(
    engine: Engine, record: dict[str, Any]
) -> None:
    two = _versions(engine)
    july = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    record["updated_at"] = int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp() * 1000)  # under 2026-01
    backdated = two.decide(record, "jcom", now=july)
    delivery = backdated.deliveries["jcom-insurance"]
    assert delivery.purposes == ("jointuse.billing",)  # the later version narrowed it: a backdated record too
    assert "email" not in delivery.items and "email" not in delivery.record
    assert (backdated.policy_version, backdated.record_policy_version) == ("2026-07", "2026-01")
    march = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    record["updated_at"] = int(dt.datetime(2026, 7, 2, tzinfo=dt.UTC).timestamp() * 1000)  # dated under 2026-07
    future = two.decide(record, "jcom", now=march)
    assert (future.status, future.reason) == (Status.INVALID, Reason.FUTURE_TIMESTAMP)


def test_a_record_within_the_clock_skew_is_decided_under_the_version_in_force_now(
    engine: Engine, record: dict[str, Any]
) -> None:
    two = _versions(engine)
    now = dt.datetime(2026, 6, 30, 14, 58, tzinfo=dt.UTC)  # 2026-07 starts at 15:00 UTC
    record["updated_at"] = int(dt.datetime(2026, 6, 30, 15, 1, tzinfo=dt.UTC).timestamp() * 1000)
    decision = two.decide(record, "jcom", now=now)
    assert decision.status is Status.SHARED and decision.policy_version == "2026-01"
    assert decision.record_policy_version == "2026-07"
    assert decision.deliveries["jcom-insurance"].purposes == ("jointuse.billing",)


def test_unknown_keys_in_consent_are_reported_by_position(engine: Engine, record: dict[str, Any]) -> None:
    record["consent"]["joint_use_stopp"] = True  # a typo of a flag that matters
    decision = engine.decide(record, "jcom", now=NOW)
    assert ("consent.<unknown@4>", "unknown") in {(d.path, d.cls) for d in decision.dropped}
    assert not any("stopp" in d.path for d in decision.dropped)
