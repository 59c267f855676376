"""Recipients of the same items share one projection (and, in the ingest processor, one encoding and
one canary walk). Sharing must never change what any recipient receives, nor what the canary sees:
for random policies (group companies with their own purposes, items tied to some purposes), each
delivery equals what a policy naming only its recipient would deliver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.devtools.group import group_company_ids
from streams.policy.canary import NOT_A_JOINT_USER, LeakCanary
from streams.policy.classification import ClassifiedSchema
from streams.policy.decision import Delivery, Status
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from tests.records import make_native_records

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
BASE = make_native_records(20, seed=5)


@st.composite
def group_policies(draw: st.DrawFn, shipped: Policy) -> Policy:
    """The shipped notice with up to 8 more group companies, each declaring some purposes (or all),
    and items that serve only some purposes, so that recipients differ in what they may receive."""
    purposes = [p.id for p in shipped.purposes]
    some_purposes = st.lists(st.sampled_from(purposes), min_size=1, max_size=5, unique=True)
    tied = draw(st.dictionaries(st.sampled_from([i.id for i in shipped.items]), some_purposes, max_size=6))
    companies = group_company_ids(draw(st.integers(min_value=0, max_value=8)))
    added = [{"id": c, "name_ja": c, "purposes": draw(st.none() | some_purposes)} for c in companies]
    data = shipped.model_dump()
    data["item_purposes"] = {"default": draw(st.sampled_from(["all", "none"])), "items": tied}
    data["joint_users"] = [*data["joint_users"], *added]
    return Policy.model_validate(data)


def _alone(schema: ClassifiedSchema, policy: Policy, source: str, recipient: str, record: Any) -> Delivery | None:
    """What ``recipient`` receives when it is the only company that may receive anything (the others
    declare no purpose): no other delivery exists to share with."""
    data = policy.model_dump()
    data["joint_users"] = [u if u["id"] in (source, recipient) else {**u, "purposes": ()} for u in data["joint_users"]]
    decision = Engine(schema, PolicySet.of([Policy.model_validate(data)])).decide(record, source, now=NOW)
    return decision.deliveries.get(recipient)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_sharing_a_projection_never_changes_what_a_recipient_receives(
    schema: ClassifiedSchema, policies: PolicySet, data: Any
) -> None:
    policy = data.draw(group_policies(policies.latest))
    record = data.draw(st.sampled_from(BASE))
    source = record["source_company"]
    judged = PolicySet.of([policy])
    decision = Engine(schema, judged).decide(record, source, now=NOW)
    if decision.status is not Status.SHARED:
        return
    deliveries = list(decision.deliveries.values())
    for delivery in deliveries:
        alone = _alone(schema, policy, source, delivery.recipient, record)
        assert alone is not None
        assert (alone.items, alone.purposes, dict(alone.record)) == (
            delivery.items,
            delivery.purposes,
            dict(delivery.record),
        )
    for first in deliveries:  # the same items share one record object, and only they
        for second in deliveries:
            assert (first.record is second.record) == (first.items == second.items)
    canary = LeakCanary(schema, judged)
    shared_walks = canary.inspect_all(deliveries, source=source, policy_version=decision.policy_version)
    one_by_one = [
        (d.recipient, path, cls)
        for d in deliveries
        for path, cls in canary.inspect(d, source=source, policy_version=decision.policy_version)
    ]
    assert shared_walks == one_by_one == []


def test_the_canary_checks_each_delivery_of_a_shared_record_against_its_own_allowance(
    schema: ClassifiedSchema, policies: PolicySet
) -> None:
    """An engine bug that shared one projection between recipients of different items must still be
    caught for the recipient that may not hold an item, and only for it."""
    record = BASE[0]
    source = record["source_company"]
    decision = Engine(schema, policies).decide(record, source, now=NOW)
    (full,) = decision.deliveries.values()
    assert "email" in full.items and full.record.get("email") is not None
    narrower = tuple(i for i in full.items if i != "email")
    recipient = full.recipient
    canary = LeakCanary(schema, policies)
    found = canary.inspect_all(
        [full, Delivery(recipient, full.purposes, narrower, full.record), Delivery(source, (), (), full.record)],
        source=source,
        policy_version=decision.policy_version,
    )
    assert (recipient, "email", "item_not_allowed") in found
    assert [f for f in found if f[0] == recipient and f[1] != "email"] == []  # the full delivery is clean
    assert (source, "<recipient>", NOT_A_JOINT_USER) in found  # the source is never a recipient
