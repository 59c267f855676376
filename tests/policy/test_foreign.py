"""The foreign-provision gate: consent, country, provider, stop of use, and what may leave."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.devtools.synthetic import Mix
from streams.errors import PolicyError
from streams.policy.classification import ClassifiedSchema, FieldClass, classify
from streams.policy.foreign import ForeignGate, ForeignReason, UnknownRecipient, foreign_schema
from streams.policy.loader import load_policies
from streams.policy.model import ForeignProvision
from tests.policies import REINSURER, policy_with_reinsurer
from tests.records import make_native_records

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
REF = {"topic": "t", "partition": 0, "offset": 7}


def _insurer_record(consent: bool = True) -> dict[str, Any]:
    for record in make_native_records(400, seed=5, mix=Mix(invalid=0.0, insurer=1.0, sensitive=1.0, secrecy=1.0)):
        if record["source_company"] == "jcom-insurance" and record.get("claims"):
            record = copy.deepcopy(record)
            record["consent"] = {**(record.get("consent") or {}), "foreign_transfer_consent": consent}
            return record
    raise AssertionError("the generator gave no insurer record with claims")


@pytest.fixture
def gate(tmp_path: Path, schema: ClassifiedSchema) -> ForeignGate:
    return ForeignGate(schema, load_policies(policy_with_reinsurer(tmp_path)).latest, REINSURER)


def test_consented_insurer_record_is_provided_with_a_provision_record(gate: ForeignGate) -> None:
    record = _insurer_record()
    decision = gate.decide(record, "jcom-insurance", now=NOW, input_ref=REF)
    assert decision.reason is ForeignReason.PROVIDED and decision.record is not None and decision.provision
    out = decision.record
    assert set(out) <= {
        "customer_id",
        "source_company",
        "name",
        "name_kana",
        "birth_date",
        "gender",
        "policy",
        "claims",
    }
    assert out["policy"] == record["policy"]
    assert all("diagnosis" not in claim for claim in out["claims"])  # sensitive, even inside insurer data
    assert "SECRET" not in repr(out)
    provision = decision.provision
    assert provision["recipient"] == REINSURER and provision["country"] == "US"
    assert provision["subject_key"] == f"jcom-insurance:{record['customer_id']}"
    assert set(provision["items"]) <= {"name", "birth_date", "gender"} and "name" in provision["items"]
    assert provision["insurer_fields"] == ["claims", "policy"]
    assert provision["provided_at"] == NOW.isoformat() and provision["input"] == REF


@pytest.mark.parametrize(
    ("consent", "source", "stopped", "reason"),
    [
        (False, "jcom-insurance", False, ForeignReason.NO_CONSENT),
        (None, "jcom-insurance", False, ForeignReason.NO_CONSENT),
        (True, "jcom", False, ForeignReason.NOT_PROVIDER),
        (True, "jcom-insurance", True, ForeignReason.STOP_OF_USE),
    ],
)
def test_refusals(gate: ForeignGate, consent: bool | None, source: str, stopped: bool, reason: ForeignReason) -> None:
    record = _insurer_record()
    record["consent"]["foreign_transfer_consent"] = consent
    decision = gate.decide(record, source, now=NOW, stopped=stopped, input_ref=REF)
    assert decision.reason is reason and decision.record is None and decision.provision is None


def test_a_record_without_consent_section_is_refused(gate: ForeignGate) -> None:
    record = _insurer_record()
    record["consent"] = None
    assert gate.decide(record, "jcom-insurance", now=NOW, input_ref=REF).reason is ForeignReason.NO_CONSENT
    assert gate.decide("not a record", "jcom-insurance", now=NOW, input_ref=REF).reason is ForeignReason.NOT_A_RECORD


def test_recipient_outside_the_allowed_countries_is_refused(tmp_path: Path, schema: ClassifiedSchema) -> None:
    with pytest.raises(PolicyError, match="not allowed"):
        load_policies(policy_with_reinsurer(tmp_path, country="CN"))
    # Defence in depth: even a policy object that skipped validation does not get past the gate.
    policy = load_policies(policy_with_reinsurer(tmp_path)).latest
    narrowed = policy.model_copy(
        update={
            "foreign_provision": ForeignProvision.model_construct(
                allowed_countries=("GB",), provider="jcom-insurance", recipients=policy.foreign_provision.recipients
            )
        }
    )
    decision = ForeignGate(schema, narrowed, REINSURER).decide(
        _insurer_record(), "jcom-insurance", now=NOW, input_ref=REF
    )
    assert decision.reason is ForeignReason.COUNTRY_NOT_ALLOWED


def test_unknown_recipient_is_refused(tmp_path: Path, schema: ClassifiedSchema) -> None:
    with pytest.raises(UnknownRecipient):
        ForeignGate(schema, load_policies(policy_with_reinsurer(tmp_path)).latest, "someone-else")


def test_foreign_schema_holds_no_secrecy_or_sensitive_field_and_encodes_the_projection(
    gate: ForeignGate, schema: ClassifiedSchema
) -> None:
    raw = foreign_schema(schema, gate.policy, REINSURER)
    classes = {node.cls for node in classify(raw).walk()}
    assert FieldClass.SECRECY_OF_COMMUNICATIONS not in classes and FieldClass.SENSITIVE not in classes
    assert FieldClass.CONSENT not in classes
    decision = gate.decide(_insurer_record(), "jcom-insurance", now=NOW, input_ref=REF)
    parsed = fastavro.parse_schema(raw)
    assert fastavro.validate(decision.record, parsed, raise_errors=True)
