"""The leak canary is independent of the projection: it walks deliveries against the governed
schema and the notice, and flags every value the recipient may not receive."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.policy.canary import ITEM_NOT_ALLOWED, NOT_A_JOINT_USER, LeakCanary
from streams.policy.classification import ClassifiedSchema
from streams.policy.decision import Delivery
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.serde.governed import GovernedVersion
from tests.avro_strategies import schemas as generated_schemas
from tests.avro_strategies import values
from tests.policy.canary_reference import reference_findings
from tests.records import make_native_records

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
JUNK = st.recursive(
    st.one_of(st.text(max_size=4), st.integers(), st.none()),
    lambda children: st.one_of(
        st.lists(children, max_size=2), st.dictionaries(st.text(max_size=3), children, max_size=2)
    ),
    max_leaves=6,
)


def test_canary_is_silent_on_real_deliveries(engine: Engine, schema: ClassifiedSchema, policies: PolicySet) -> None:
    canary = LeakCanary(schema, policies)
    checked = 0
    for record in make_native_records(200, seed=4):
        decision = engine.decide(record, record["source_company"], now=NOW)
        for delivery in decision.deliveries.values():
            assert (
                canary.inspect(delivery, source=record["source_company"], policy_version=decision.policy_version) == []
            )
            checked += 1
    assert checked > 150


def _inspect(
    schema: ClassifiedSchema, policies: PolicySet, record: dict[str, object], items: tuple[str, ...]
) -> list[tuple[str, str]]:
    delivery = Delivery("jcom-insurance", ("jointuse.billing",), items, record)
    return sorted(LeakCanary(schema, policies).inspect(delivery, source="jcom", policy_version=policies.latest.version))


def test_canary_finds_every_class_that_may_not_leave_at_any_depth(
    schema: ClassifiedSchema, policies: PolicySet
) -> None:
    leaked = {
        "customer_id": "c",
        "name": "n",
        "medical_history": "x",
        "claims": [{"claim_no": "1", "amount_jpy": 1}],
        "service_usage": [{"service": "tv", "secret": 1}],
        "payment_status": {"status": "paid", "extra": 2},
        "consent": {"marketing_opt_out": False},
        "updated_at": 1,
        "surprise": 3,
        "call_records": None,  # null holds nothing
    }
    found = _inspect(schema, policies, leaked, ("name", "service_usage", "payment_status"))
    assert found == sorted(
        [
            ("medical_history", "sensitive"),
            ("claims", "insurer_only"),
            ("consent", "consent"),
            ("updated_at", "metadata"),
            ("service_usage[].<unknown@2>", "unknown"),
            ("payment_status.<unknown@2>", "unknown"),
            ("<unknown@9>", "unknown"),
        ]
    )
    assert all("secret" not in path and "surprise" not in path for path, _ in found)


def test_canary_flags_items_the_delivery_does_not_name(schema: ClassifiedSchema, policies: PolicySet) -> None:
    found = _inspect(schema, policies, {"customer_id": "c", "name": "n", "email": "e@x"}, ("name",))
    assert found == [("email", ITEM_NOT_ALLOWED)]
    found = _inspect(schema, policies, {"customer_id": "c", "name": "n"}, ("name", "not_in_notice"))
    assert found == []  # a named item the notice lacks allows nothing, and nothing of it is present
    found = _inspect(schema, policies, {"customer_id": "c", "occupation": "o"}, ("not_in_notice",))
    assert found == [("occupation", ITEM_NOT_ALLOWED)]


def test_canary_flags_a_recipient_that_is_not_a_joint_user(schema: ClassifiedSchema, policies: PolicySet) -> None:
    canary = LeakCanary(schema, policies)
    version = policies.latest.version
    outsider = Delivery("outsider", (), ("name",), {"customer_id": "c", "name": "n"})
    assert (("<recipient>", NOT_A_JOINT_USER)) in canary.inspect(outsider, source="jcom", policy_version=version)
    to_itself = Delivery("jcom", (), ("name",), {"customer_id": "c", "name": "n"})
    assert ("<recipient>", NOT_A_JOINT_USER) in canary.inspect(to_itself, source="jcom", policy_version=version)
    unknown_version = Delivery("jcom-insurance", (), ("name",), {"customer_id": "c"})
    assert canary.inspect(unknown_version, source="jcom", policy_version="1999") == [("<recipient>", NOT_A_JOINT_USER)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_the_compiled_canary_finds_what_the_plain_walk_finds(policies: PolicySet, data: Any) -> None:
    """Over generated schemas (records, arrays, maps, tagged and untagged unions), values with
    protected fields, foreign keys and wrong shapes, and any subset of items."""
    version = GovernedVersion.build("generated.v1", data.draw(generated_schemas()))
    record = data.draw(values(version.classified.root, marked=False))
    for key, value in data.draw(st.dictionaries(st.text(max_size=4), JUNK, max_size=3)).items():
        record.setdefault(key, value)
    items = tuple(data.draw(st.sets(st.sampled_from(sorted(policies.latest.item_ids)))))
    recipient = data.draw(st.sampled_from(["jcom-insurance", "jcom", "outsider"]))
    found = LeakCanary(version.classified, policies).inspect(
        Delivery(recipient, (), items, record), source="jcom", policy_version=policies.latest.version
    )
    joint_user = recipient == "jcom-insurance"
    allowed = frozenset(items) & policies.latest.item_ids if joint_user else frozenset()
    expected = reference_findings(record, version.classified.root, allowed)
    assert found == ([] if joint_user else [("<recipient>", NOT_A_JOINT_USER)]) + expected


def test_findings_come_in_the_record_s_order_whatever_the_quick_look_met_first(policies: PolicySet) -> None:
    """A record level is first looked at by its names as a set (``_clean``); what that look finds is
    taken back and the record walked in order. Here a nested finding and a protected field beside
    it must both be reported, in order, for every order of the record's keys, under the same
    allowance (so the second and later records reuse the level's plan), and a clean record after
    them is silent."""
    schema = {
        "type": "record",
        "name": "Top",
        "fields": [
            {"name": "customer_id", "type": "string", "jointuse.class": "identifier"},
            {"name": "source_company", "type": "string", "jointuse.class": "identifier"},
            {"name": "plain", "type": "string", "jointuse.class": "item", "jointuse.item": "name"},
            {
                "name": "inner",
                "jointuse.class": "item",
                "jointuse.item": "name",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "fields": [
                        {"name": "kept", "type": "string", "jointuse.class": "item", "jointuse.item": "name"},
                        {"name": "secret", "type": "string", "jointuse.class": "secrecy_of_communications"},
                    ],
                },
            },
            {"name": "logs", "type": ["null", "string"], "jointuse.class": "secrecy_of_communications"},
        ],
    }
    canary = LeakCanary(GovernedVersion.build("ordered.v1", schema).classified, policies)
    version = policies.latest.version
    leaky = {"customer_id": "c", "plain": "p", "inner": {"kept": "k", "secret": "s"}, "logs": "l"}
    for names in (list(leaky), list(reversed(leaky))):
        record = {name: leaky[name] for name in names}
        found = canary.inspect(Delivery("jcom-insurance", (), ("name",), record), source="jcom", policy_version=version)
        expected = [("inner.secret", "secrecy_of_communications"), ("logs", "secrecy_of_communications")]
        assert found == (expected if names[0] == "customer_id" else expected[::-1])
    clean = {"customer_id": "c", "plain": "p", "inner": {"kept": "k", "secret": None}, "logs": None}
    assert canary.inspect(Delivery("jcom-insurance", (), ("name",), clean), source="jcom", policy_version=version) == []
    assert canary.inspect(Delivery("jcom-insurance", (), (), clean), source="jcom", policy_version=version) == [
        ("plain", ITEM_NOT_ALLOWED),
        ("inner", ITEM_NOT_ALLOWED),
    ]
