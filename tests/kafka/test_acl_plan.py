from __future__ import annotations

from streams.kafka.acl_plan import PIPELINE_PRINCIPAL, Acl, diff_access, plan_access
from streams.policy.loader import PolicySet, parse_policy
from streams.topology import Topology
from tests.conftest import POLICY_PATH
from tests.policies import policy_text_without_the_insurer

T = Topology("p")


def _allowed(plan_acls: frozenset[Acl], principal: str, operation: str, resource: str, name: str) -> bool:
    return any(
        acl.principal == f"User:{principal}" and acl.operation == operation and acl.covers(resource, name)
        for acl in plan_acls
    )


def test_each_company_reaches_only_its_own_topics(policies: PolicySet) -> None:
    acls = plan_access(policies.latest, T).acls
    assert _allowed(acls, "jcom", "write", "topic", T.ingest("jcom"))
    assert _allowed(acls, "jcom", "read", "topic", T.deliver("jcom"))
    assert _allowed(acls, "jcom", "read", "topic", T.dead_letters("jcom"))
    assert _allowed(acls, "jcom", "read", "group", "p.jcom.analytics")
    for forbidden in [
        ("read", "topic", T.deliver("jcom-insurance")),
        ("read", "topic", T.ingest("jcom")),
        ("read", "topic", T.ingest("jcom-insurance")),
        ("write", "topic", T.deliver("jcom")),
        ("write", "topic", T.dead_letters("jcom")),
        ("write", "topic", T.audit),
        ("read", "topic", T.audit),
        ("read", "topic", T.dead_letters("jcom-insurance")),
        ("read", "group", "p.jcom-insurance.x"),
        ("read", "group", "p.pipeline"),
        ("write", "topic", T.ingest("jcom-insurance")),
    ]:
        assert not _allowed(acls, "jcom", *forbidden), forbidden
    assert _allowed(acls, PIPELINE_PRINCIPAL, "read", "topic", T.ingest("anyone"))
    assert _allowed(acls, PIPELINE_PRINCIPAL, "write", "transactional_id", "p.pipeline.host-0")
    assert not _allowed(acls, PIPELINE_PRINCIPAL, "read", "topic", T.deliver("jcom"))
    assert _allowed(acls, "jointuse-auditor", "read", "topic", T.audit)
    # Rights requests come from the privacy desk only; the pipeline reads them; companies read notices.
    assert _allowed(acls, "jointuse-auditor", "write", "topic", T.rights)
    assert not _allowed(acls, "jcom", "write", "topic", T.rights)
    assert _allowed(acls, PIPELINE_PRINCIPAL, "read", "topic", T.rights)
    assert _allowed(acls, "jcom", "read", "topic", T.notices("jcom"))
    assert not _allowed(acls, "jcom", "read", "topic", T.notices("jcom-insurance"))
    assert _allowed(acls, "jointuse-retention", "read", "topic", T.deliver("jcom"))
    assert not _allowed(acls, "jointuse-retention", "read", "topic", T.ingest("jcom"))


def test_removed_company_loses_its_acls(policies: PolicySet) -> None:
    before = plan_access(policies.latest, T)
    text = policy_text_without_the_insurer()
    after = plan_access(parse_policy(text), T)
    diff = diff_access(after, set(before.acls) | {Acl("topic", "other.app", "literal", "User:x", "read")}, T)
    assert diff.to_add == ()
    assert diff.to_remove and all(a.principal == "User:jcom-insurance" for a in diff.to_remove)
    assert not diff_access(before, set(before.acls), T).to_add  # idempotent


def test_a_company_may_produce_in_transactions_in_its_own_namespace_only(policies: PolicySet) -> None:
    acls = plan_access(policies.latest, T).acls
    for operation in ("write", "describe"):
        assert _allowed(acls, "jcom", operation, "transactional_id", "p.jcom.connect-ingest-0")
    for other in (
        "p.jcom-insurance.loader",
        "p.pipeline.host-0",
        "p.pipeline.stats",
        "p.auditor.desk",
        "q.jcom.x",
        "p.jcom",
    ):
        assert not _allowed(acls, "jcom", "write", "transactional_id", other), other


def test_a_company_cannot_take_a_name_of_the_deployment_s_own() -> None:
    import pytest

    from streams.errors import PolicyError

    text = POLICY_PATH.read_text(encoding="utf-8")
    for reserved in ("pipeline", "auditor", "retention"):
        with pytest.raises(PolicyError, match="deployment's own names"):
            parse_policy(text.replace("id: jcom-insurance,", f"id: {reserved},"))


def test_each_standing_channel_reads_only_its_own_deliveries() -> None:
    from streams.policy.model import Policy
    from tests.policy.test_handling import INVESTIGATOR, _with_channels
    from tests.policy.test_provide import LAWYER, REINSURER

    policy = Policy.model_validate(_with_channels(INVESTIGATOR, REINSURER, LAWYER))
    plan = plan_access(policy, T)
    acls = plan.acls
    assert _allowed(acls, "claims-investigator", "read", "topic", T.provide("claims-investigator"))
    assert _allowed(acls, "claims-investigator", "read", "group", "p.claims-investigator.intake")
    for forbidden in [
        ("read", "topic", T.provide("domestic-re")),
        ("read", "topic", T.deliver("jcom-insurance")),
        ("read", "topic", T.supervision),
        ("read", "topic", T.provision_records),
        ("read", "topic", T.ingest("jcom-insurance")),
        ("write", "topic", T.provide("claims-investigator")),
    ]:
        assert not _allowed(acls, "claims-investigator", *forbidden), forbidden
    assert "counsel" not in plan.principals  # case by case: no topic, no principal
    assert _allowed(acls, PIPELINE_PRINCIPAL, "write", "topic", T.provide("domestic-re"))
    assert _allowed(acls, PIPELINE_PRINCIPAL, "write", "topic", T.supervision)
    assert not _allowed(acls, PIPELINE_PRINCIPAL, "read", "topic", T.provide("domestic-re"))
    assert _allowed(acls, "jointuse-auditor", "read", "topic", T.supervision)
    topics = {spec.name for spec in T.specs(policy)}
    assert {T.provide("claims-investigator"), T.provide("domestic-re"), T.supervision} <= topics
    assert T.provide("counsel") not in topics


def test_erasure_can_reach_a_channel_a_later_version_dropped() -> None:
    """The pipeline's erasure loop tombstones what a standing channel was once provided, even after
    the policy stops naming any channel; the channel itself no longer reads anything."""
    plan = plan_access(parse_policy(POLICY_PATH.read_text(encoding="utf-8")), T)  # names no channel
    assert _allowed(plan.acls, PIPELINE_PRINCIPAL, "write", "topic", T.provide("example-re-us"))
    assert _allowed(plan.acls, PIPELINE_PRINCIPAL, "write", "topic", T.notices("example-re-us"))
    assert "example-re-us" not in plan.principals
