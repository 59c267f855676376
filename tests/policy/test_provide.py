"""One engine decides every channel of the insurer's notice (Engine.provide), and the canary checks
each provision against its own channel's allowance, worked out on its own."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.policy.bases import BASES, NEVER_PROVIDED, LegalBasis
from streams.policy.canary import NOT_A_JOINT_USER, LeakCanary
from streams.policy.classification import ClassifiedSchema, FieldClass, FieldNode
from streams.policy.decision import Delivery, Reason, Status
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from tests.policy.test_handling import INVESTIGATOR, _with_channels
from tests.records import make_native_records

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
REINSURER = {
    "id": "domestic-re",
    "basis": "reinsurance",
    "name_ja": "国内再保険株式会社",
    "purposes": ["insurer.reinsurance"],
    "items": ["name", "birth_date", "gender"],
    "insurer_fields": ["policy"],
    "contract": "TREATY-2026-01",
    "consent_reference": "保険契約申込書 個人情報の取扱いに関する同意欄",
}
ASSOCIATION = {
    "id": "ssi-association",
    "basis": "industry_exchange",
    "name_ja": "一般社団法人日本少額短期保険協会",
    "purposes": ["insurer.underwriting", "insurer.claims_payment"],
    "items": ["name", "birth_date", "gender", "address"],
    "insurer_fields": ["policy"],
    "consent_reference": "保険契約申込書 情報交換制度に関する同意欄",
}
LAWYER = {
    "id": "counsel",
    "basis": "professional",
    "name_ja": "法律事務所",
    "purposes": ["insurer.claims_payment"],
    "items": ["name", "address"],
    "insurer_fields": ["policy", "claims"],
    "consent_reference": "保険契約申込書 個人情報の取扱いに関する同意欄",
}
ABROAD = {
    "id": "re-us",
    "basis": "foreign",
    "name_ja": "米国再保険会社",
    "country": "US",
    "purposes": ["insurer.reinsurance"],
    "items": ["name", "birth_date", "gender"],
    "insurer_fields": ["policy", "claims"],
    "contract": "TREATY-ABROAD-2026",
    "consent_reference": "保険契約申込書 外国にある第三者への提供に関する同意欄",
}
AUTHORITY = {
    "id": "authority",
    "basis": "legal_obligation",
    "name_ja": "所管官庁",
    "purposes": ["insurer.incidental"],
    "items": ["name", "address", "birth_date"],
    "insurer_fields": ["policy"],
}


IDENTIFIERS = frozenset({"customer_id", "source_company"})
# What each channel above receives of a record that holds everything (identifiers aside).
CLAIM_FILE = frozenset(
    {"name", "name_kana", "address", "postal_code", "phone", "birth_date", "policy", "claims", "medical_history"}
)
REINSURED = frozenset({"name", "name_kana", "birth_date", "gender", "policy"})
REINSURED_ABROAD = REINSURED | {"claims"}  # claims without their diagnosis: no sensitive data abroad
EXCHANGED = frozenset({"name", "name_kana", "birth_date", "gender", "address", "postal_code", "policy"})


def _insured(**changes: Any) -> dict[str, Any]:
    """An insurer's customer with a contract, a claim and values in every protected field."""
    base = next(r for r in make_native_records(60, seed=1) if r.get("claims") and r.get("policy"))
    record = copy.deepcopy(base)
    record.update(race="RACE", medical_history="MEDICAL", criminal_record="CRIME")
    record.update(changes)
    return record


@pytest.fixture(scope="module")
def channels_policy() -> Policy:
    return Policy.model_validate(_with_channels(INVESTIGATOR, REINSURER, ASSOCIATION, LAWYER, AUTHORITY, ABROAD))


@pytest.fixture(scope="module")
def engine(schema: ClassifiedSchema, channels_policy: Policy) -> Engine:
    return Engine(schema, channels_policy)


@pytest.fixture(scope="module")
def canary(schema: ClassifiedSchema, channels_policy: Policy) -> LeakCanary:
    return LeakCanary(schema, PolicySet.of([channels_policy]))


def _provided(engine: Engine, channel: str, record: dict[str, Any], **options: Any) -> Delivery:
    decision = engine.provide(record, record["source_company"], channel, now=NOW, **options)
    assert decision.status is Status.SHARED, decision.message
    return decision.deliveries[channel]


def test_a_claim_file_reaches_the_entrusted_investigator_with_its_tasks_items_only(
    engine: Engine, canary: LeakCanary
) -> None:
    record = _insured()
    delivery = _provided(engine, "claims-investigator", record)
    assert set(delivery.record) == IDENTIFIERS | CLAIM_FILE
    assert delivery.record["claims"][0]["diagnosis"] == record["claims"][0]["diagnosis"]  # named for claims
    assert delivery.purposes == ("insurer.claims_payment",)
    assert delivery.fields == (
        "claims",
        "claims[].amount_jpy",
        "claims[].claim_no",
        "claims[].diagnosis",
        "medical_history",
        "policy",
        "policy.policy_no",
        "policy.premium_jpy",
        "policy.product",
        "policy.started_at",
    )
    assert canary.inspect_all([delivery], source="jcom-insurance", policy_version=engine.policies.latest.version) == []


def test_the_reinsurer_gets_the_contract_but_no_sensitive_data_it_was_not_given(engine: Engine) -> None:
    delivery = _provided(engine, "domestic-re", _insured())
    assert set(delivery.record) == IDENTIFIERS | REINSURED


def _consented_abroad(**changes: Any) -> dict[str, Any]:
    consent = {"marketing_opt_out": False, "joint_use_stop": False, "foreign_transfer_consent": True}
    return _insured(consent=consent, **changes)


def test_a_reinsurer_abroad_gets_the_contract_with_the_subjects_own_consent_and_no_sensitive_data(
    engine: Engine, canary: LeakCanary
) -> None:
    record = _consented_abroad()
    delivery = _provided(engine, "re-us", record)
    assert set(delivery.record) == IDENTIFIERS | REINSURED_ABROAD
    assert delivery.basis == "foreign" and delivery.purposes == ("insurer.reinsurance",)
    assert all("diagnosis" not in claim for claim in delivery.record["claims"])  # sensitive, inside insurer data
    assert "MEDICAL" not in repr(delivery.record) and "RACE" not in repr(delivery.record)
    assert canary.inspect_all([delivery], source="jcom-insurance", policy_version=engine.policies.latest.version) == []


def test_provision_abroad_needs_the_subjects_own_consent_to_it_not_only_a_contract(engine: Engine) -> None:
    record = _insured(consent={"marketing_opt_out": False, "joint_use_stop": False, "foreign_transfer_consent": False})
    decision = engine.provide(record, "jcom-insurance", "re-us", now=NOW)
    assert (decision.status, decision.reason) == (Status.WITHHELD, Reason.NO_CONSENT)
    assert "consent.foreign_transfer_consent" in decision.detail
    # A value the schema does not allow (a producer's "yes") is not consent: the record is invalid.
    unsure = _insured(consent={"marketing_opt_out": False, "joint_use_stop": False, "foreign_transfer_consent": "yes"})
    assert engine.provide(unsure, "jcom-insurance", "re-us", now=NOW).status is Status.INVALID
    # The domestic reinsurer's consent is the contract's: the same record goes there.
    assert engine.provide(record, "jcom-insurance", "domestic-re", now=NOW).status is Status.SHARED


def test_a_recipient_abroad_that_moved_country_between_versions_gets_nothing(schema: ClassifiedSchema) -> None:
    """A record governed by a version under which the recipient was elsewhere: consent was asked for
    provision to that country (Art. 28), so nothing goes until both versions agree."""
    old = _with_channels(ABROAD)  # in force from 2026-01-01
    new = _with_channels({**ABROAD, "country": "GB"})
    new["notice"].update(version="2026-04", published_at="2026-03-01", effective_from="2026-04-01T00:00:00+09:00")
    policies = PolicySet.of([Policy.model_validate(old), Policy.model_validate(new)])
    engine = Engine(schema, policies)
    record = _consented_abroad(updated_at=int(dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp() * 1000))
    decision = engine.provide(record, "jcom-insurance", "re-us", now=NOW)
    assert (decision.status, decision.reason) == (Status.WITHHELD, Reason.NO_CHANNEL)
    assert "country" in decision.detail


def test_a_provision_abroad_leaves_a_record_naming_its_country(engine: Engine) -> None:
    from streams.policy.provision import Provision

    delivery = _provided(engine, "re-us", _consented_abroad())
    channel = engine.policies.latest.channels_by_id["re-us"]
    provision = Provision(
        channel,
        delivery,
        subject="s",
        subject_key="jcom-insurance:c",
        source="jcom-insurance",
        policy_version="v",
        provided_at=NOW,
        input_ref={"topic": "t", "partition": 0, "offset": 1},
    )
    entry = provision.record()
    assert entry is not None and entry["article_29"] is True
    assert (entry["basis"], entry["country"], entry["recipient"]) == ("foreign", "US", "re-us")
    assert entry["consent"] == ABROAD["consent_reference"] and provision.supervision() is None


def test_the_association_receives_exactly_its_fixed_items(engine: Engine) -> None:
    delivery = _provided(engine, "ssi-association", _insured())
    assert set(delivery.record) - IDENTIFIERS == EXCHANGED


@pytest.mark.parametrize(
    "channel", ["claims-investigator", "domestic-re", "ssi-association", "counsel", "authority", "re-us"]
)
def test_another_companys_customer_is_never_provided(engine: Engine, channel: str) -> None:
    record = _insured(source_company="jcom")
    decision = engine.provide(record, "jcom", channel, now=NOW)
    assert (decision.status, decision.reason) == (Status.WITHHELD, Reason.NOT_PROVIDER)


def test_consent_is_shown_by_a_contract_where_the_basis_needs_it(engine: Engine) -> None:
    no_contract = _insured(policy=None, claims=None)
    for channel in ("domestic-re", "ssi-association", "counsel", "re-us"):  # consent needed
        assert engine.provide(no_contract, "jcom-insurance", channel, now=NOW).reason is Reason.NO_CONSENT
    for channel in ("claims-investigator", "authority"):  # entrustment, a law: no consent
        assert engine.provide(no_contract, "jcom-insurance", channel, now=NOW).status is Status.SHARED


def test_a_stop_of_use_stops_every_basis_but_a_legal_obligation(engine: Engine) -> None:
    for channel in ("claims-investigator", "domestic-re", "ssi-association", "counsel", "re-us"):
        decision = engine.provide(_insured(), "jcom-insurance", channel, now=NOW, stopped=True)
        assert decision.reason is Reason.STOP_OF_USE
    assert engine.provide(_insured(), "jcom-insurance", "authority", now=NOW, stopped=True).status is Status.SHARED


def test_joint_use_stop_does_not_concern_the_insurers_own_channels(engine: Engine) -> None:
    record = _insured(consent={"marketing_opt_out": False, "joint_use_stop": True, "foreign_transfer_consent": False})
    assert engine.provide(record, "jcom-insurance", "claims-investigator", now=NOW).status is Status.SHARED
    assert engine.decide(record, "jcom-insurance", now=NOW).reason is Reason.JOINT_USE_STOP


def test_an_unknown_channel_and_an_invalid_record_are_decided_as_values(engine: Engine) -> None:
    assert engine.provide(_insured(), "jcom-insurance", "nosuch", now=NOW).reason is Reason.NO_CHANNEL
    assert engine.provide(_insured(), "jcom-insurance", "jcom", now=NOW).reason is Reason.NO_CHANNEL
    assert engine.provide(["x"], "jcom-insurance", "counsel", now=NOW).status is Status.INVALID
    bad = _insured(birth_date="yesterday")
    assert engine.provide(bad, "jcom-insurance", "counsel", now=NOW).reason is Reason.SCHEMA_VIOLATION


def test_the_sensitive_fields_not_provided_are_reported_dropped(engine: Engine) -> None:
    decision = engine.provide(_insured(), "jcom-insurance", "claims-investigator", now=NOW)
    dropped = {d.path for d in decision.dropped}
    assert {"race", "criminal_record"} <= dropped
    assert "medical_history" not in dropped and "policy" not in dropped


def test_the_canary_finds_what_a_channel_may_not_hold(engine: Engine, canary: LeakCanary) -> None:
    version = engine.policies.latest.version
    good = _provided(engine, "claims-investigator", _insured())
    record = dict(good.record)
    leaked = {**record, "race": "RACE", "email": "x@example.jp", "consent": {"joint_use_stop": False}}
    found = canary.inspect(
        Delivery("claims-investigator", good.purposes, good.items, leaked, good.fields),
        source="jcom-insurance",
        policy_version=version,
    )
    assert {(path, cls) for path, cls in found} == {
        ("race", "sensitive"),
        ("email", "item_not_allowed"),
        ("consent", "consent"),
    }
    # The reinsurer was given no sensitive field, and no purpose allows the lawyer's elsewhere.
    to_reinsurer = Delivery(
        "domestic-re", ("insurer.reinsurance",), ("name",), {"customer_id": "c", "medical_history": "M"}
    )
    assert canary.inspect(to_reinsurer, source="jcom-insurance", policy_version=version) == [
        ("medical_history", "sensitive")
    ]
    # A joint user never holds insurer-only or sensitive data; a channel only the provider's customers'.
    to_joint_user = Delivery("jcom", ("jointuse.billing",), ("name",), {"customer_id": "c", "policy": {}})
    assert canary.inspect(to_joint_user, source="jcom-insurance", policy_version=version) == [
        ("policy", "insurer_only")
    ]
    assert ("<recipient>", NOT_A_JOINT_USER) in canary.inspect(good, source="jcom", policy_version=version)


def test_a_secrecy_field_named_as_sensitive_is_never_provided(schema: ClassifiedSchema) -> None:
    data = _with_channels({**INVESTIGATOR, "sensitive_fields": ["medical_history", "call_records"]})
    policy = Policy.model_validate(data)
    engine, canary = Engine(schema, policy), LeakCanary(schema, PolicySet.of([policy]))
    calls = [{"called_at": 1_700_000_000_000, "callee": "0312345678", "duration_s": 60}]
    record = _insured(call_records=calls)
    if engine.validate(record) is not None:  # the generator's own shape of a call record
        record = _insured()
        record["call_records"] = None
    delivery = _provided(engine, "claims-investigator", record)
    assert "call_records" not in delivery.record
    leaked = Delivery(
        delivery.recipient,
        delivery.purposes,
        delivery.items,
        {**delivery.record, "call_records": calls},
        delivery.fields,
    )
    found = canary.inspect(leaked, source="jcom-insurance", policy_version=policy.version)
    assert ("call_records", "secrecy_of_communications") in found


# Property: for random channels and records, no channel receives a class or field its basis and
# entry forbid, and the canary agrees with the projection (finds nothing in what it made, and finds
# every protected field added to it that the channel may not hold).

_RECORDS = [r for r in make_native_records(80, seed=4) if r["source_company"] == "jcom-insurance"]


def _nodes(fields: tuple[FieldNode, ...]) -> dict[str, FieldNode]:
    out: dict[str, FieldNode] = {}
    for node in fields:
        out[node.path] = node
        out.update(_nodes(node.children))
    return out


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Every field path present (non-null) in a native value."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if inner is None:
                continue
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            found |= _paths(inner, path)
    elif isinstance(value, list):
        for inner in value:
            found |= _paths(inner, f"{prefix}[]")
    elif isinstance(value, tuple) and len(value) == 2:
        found |= _paths(value[1], prefix)
    return found


_SENSITIVE_PURPOSES = ["insurer.underwriting", "insurer.claims_payment", "insurer.reinsurance"]


@st.composite
def _mostly_valid_channels(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """Channels that a policy mostly accepts (its refusals are test_handling's): each basis with
    what it needs, sensitive fields with the purposes that allow them or, now and then, without."""
    basis = draw(
        st.sampled_from(
            ["entrustment", "reinsurance", "industry_exchange", "professional", "legal_obligation", "foreign"]
        )
    )
    rules = BASES[LegalBasis(basis)]
    sensitive = (
        draw(st.lists(st.sampled_from(["medical_history", "race", "claims[].diagnosis"]), max_size=2, unique=True))
        if rules.may_carry_sensitive
        else []
    )
    pool = _SENSITIVE_PURPOSES if sensitive and draw(st.booleans()) else [*_SENSITIVE_PURPOSES, "insurer.products"]
    return {
        "id": f"recipient-{index}",
        "basis": basis,
        "name_ja": f"受領者{index}株式会社",
        "purposes": draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True)),
        "items": draw(
            st.lists(
                st.sampled_from(["name", "address", "phone", "birth_date", "email", "gender"]), max_size=4, unique=True
            )
        ),
        "insurer_fields": draw(st.lists(st.sampled_from(["policy", "claims"]), max_size=2, unique=True)),
        "sensitive_fields": sensitive,
        "task_ja": "損害調査",
        "contract": "C-1",
        "consent_reference": "申込書 第5条",
        **({"country": draw(st.sampled_from(["US", "GB", "SG"]))} if basis == "foreign" else {}),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True).flatmap(
        lambda ids: st.tuples(*[_mostly_valid_channels(i) for i in ids])
    ),
    st.sampled_from(_RECORDS),
    st.booleans(),
)
def test_no_channel_ever_receives_what_its_basis_forbids(
    schema: ClassifiedSchema, channels: tuple[dict[str, Any], ...], base: dict[str, Any], sensitive_values: bool
) -> None:
    try:
        policy = Policy.model_validate(_with_channels(*channels))
    except ValidationError:
        return
    assert policy.handling is not None
    engine, canary = Engine(schema, policy), LeakCanary(schema, PolicySet.of([policy]))
    nodes = _nodes(schema.fields)
    record = copy.deepcopy(base)
    if sensitive_values:
        record.update(medical_history="M", race="R")
        for claim in record.get("claims") or []:
            claim["diagnosis"] = "D"
    for channel in policy.handling.channels:
        decision = engine.provide(record, "jcom-insurance", channel.id, now=NOW)
        if decision.status is not Status.SHARED:
            continue
        delivery = decision.deliveries[channel.id]
        rules = BASES[channel.basis]
        if rules.consent_member is not None:  # abroad: the subject's own consent to it, always
            assert (record.get("consent") or {}).get(rules.consent_member) is True
        for path in _paths(delivery.record):
            node = nodes[path]
            assert node.cls in rules.classes and node.cls not in NEVER_PROVIDED, (channel.basis, path)
            if node.cls is FieldClass.SENSITIVE:
                assert path in channel.sensitive_fields
                assert set(delivery.purposes) <= set(policy.handling.sensitive_purposes)
            if node.cls is FieldClass.ITEM:
                assert node.item in channel.items
        assert canary.inspect_all([delivery], source="jcom-insurance", policy_version=policy.version) == []
        # Every protected top-level field the channel may not hold is caught when slipped in.
        sensitive_ok = rules.may_carry_sensitive and set(channel.purposes) <= set(policy.handling.sensitive_purposes)
        for name in ("race", "medical_history", "policy", "claims"):
            may_hold = (
                nodes[name].cls is FieldClass.INSURER_ONLY
                and FieldClass.INSURER_ONLY in rules.classes
                and name in channel.insurer_fields
            ) or (nodes[name].cls is FieldClass.SENSITIVE and sensitive_ok and name in channel.sensitive_fields)
            if may_hold:
                continue
            slipped = Delivery(
                delivery.recipient,
                delivery.purposes,
                delivery.items,
                {**delivery.record, name: record.get(name) or "X"},
                delivery.fields,
            )
            assert canary.inspect(slipped, source="jcom-insurance", policy_version=policy.version), name


def test_every_case_by_case_provision_is_recorded_even_where_article_29_asks_for_none(
    engine: Engine, channels_policy: Policy
) -> None:
    from streams.policy.provision import Provision

    for channel_id, required in (("authority", False), ("counsel", True), ("claims-investigator", None)):
        delivery = _provided(engine, channel_id, _insured())
        about = {"subject": "s", "subject_key": "jcom-insurance:C1", "source": "jcom-insurance"}
        provision = Provision(
            channels_policy.channels_by_id[channel_id],
            delivery,
            **about,
            policy_version="2026-01",
            provided_at=NOW,
            input_ref={},
            request=None if required is None else "REQ-1",
        )
        record = provision.record()
        if required is None:  # a standing entrustee: no record, a supervision entry
            assert record is None and provision.supervision() is not None
        else:
            assert record is not None and (record["request"], record["article_29"]) == ("REQ-1", required)
