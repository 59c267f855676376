"""Who may read and write what on the cluster, derived from the policy (pure: no Kafka client here).

- each joint user writes only its own ingest topic, reads only its own delivery and dead-letter
  topics, consumes with groups named ``<prefix>.<company>.*`` and may produce in transactions with
  transactional ids named ``<prefix>.<company>.*`` (exactly-once loaders: Kafka Connect, Flink,
  Kafka Streams; idempotence needs no ACL of its own since Kafka 2.8);
- the pipeline reads every ingest topic and writes deliveries, dead letters and the audit topic,
  with groups and transactional ids named ``<prefix>.pipeline*``;
- the retention job reads the delivery topics and writes tombstones and notices;
- the auditor (the privacy desk) reads the audit and provision-record topics, writes rights
  requests and corrections, keeps the incidents and writes their notices, with groups named
  ``<prefix>.auditor.*``;
- each standing channel of the insurer's notice (an entrustee, a reinsurer at home or abroad, the
  association) reads only its own delivery topic and notices;
- nobody else gets anything: the broker denies what no ACL allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.policy.bases import BASES
from streams.policy.model import Channel, Policy
from streams.topology import Topology

PIPELINE_PRINCIPAL = "jointuse-pipeline"
AUDITOR_PRINCIPAL = "jointuse-auditor"
RETENTION_PRINCIPAL = "jointuse-retention"


@dataclass(frozen=True, order=True)
class Acl:
    resource_type: str  # topic | group | transactional_id
    name: str
    pattern: str  # literal | prefixed
    principal: str  # "User:<name>"
    operation: str  # read | write | describe
    permission: str = "allow"

    def covers(self, resource_type: str, name: str) -> bool:
        """Whether this ACL is about the resource ``name`` of ``resource_type`` (literal or prefixed)."""
        if self.resource_type != resource_type:
            return False
        return name == self.name if self.pattern == "literal" else name.startswith(self.name)

    def __str__(self) -> str:
        return f"{self.permission} {self.principal} {self.operation} {self.resource_type}:{self.pattern}:{self.name}"


@dataclass(frozen=True)
class AccessPlan:
    principals: tuple[str, ...]
    acls: frozenset[Acl]


def _user(name: str) -> str:
    return f"User:{name}"


def _topic(principal: str, name: str, *operations: str, pattern: str = "literal") -> list[Acl]:
    return [Acl("topic", name, pattern, principal, op) for op in ("describe", *operations)]


def company_group_prefix(topology: Topology, company: str) -> str:
    return f"{topology.prefix}.{company}."


def company_transactional_prefix(topology: Topology, company: str) -> str:
    """A company's transactional ids: its own namespace, so that it can fence no one else's
    producer (the pipeline's are ``<prefix>.pipeline*``, another company's ``<prefix>.<other>.``)."""
    return f"{topology.prefix}.{company}."


def plan_access(policy: Policy, topology: Topology) -> AccessPlan:
    channels = _standing_channels(policy)
    principals = [
        *(user.id for user in policy.joint_users),
        PIPELINE_PRINCIPAL,
        RETENTION_PRINCIPAL,
        AUDITOR_PRINCIPAL,
        *(channel.id for channel in channels),
    ]
    acls = [acl for user in policy.joint_users for acl in _joint_user_acls(policy, topology, user.id)]
    acls += _pipeline_acls(policy, topology)
    acls += _retention_acls(topology)
    acls += _auditor_acls(policy, topology)
    for channel in channels:
        acls += _channel_acls(topology, channel.id)
    return AccessPlan(tuple(principals), frozenset(acls))


def _standing_channels(policy: Policy) -> list[Channel]:
    return [c for c in policy.handling.channels if BASES[c.basis].continuous] if policy.handling else []


def _joint_user_acls(policy: Policy, topology: Topology, company: str) -> list[Acl]:
    principal = _user(company)
    acls: list[Acl] = []
    for table in policy.statistics.tables:
        if company in table.recipients:
            acls += _topic(principal, topology.stats(table.id), "read")
    acls += _topic(principal, topology.ingest(company), "write")
    acls += _topic(principal, topology.deliver(company), "read")
    acls += _topic(principal, topology.dead_letters(company), "read")
    acls += _topic(principal, topology.notices(company), "read")
    acls.append(Acl("group", company_group_prefix(topology, company), "prefixed", principal, "read"))
    acls += [
        Acl("transactional_id", company_transactional_prefix(topology, company), "prefixed", principal, op)
        for op in ("write", "describe")
    ]
    return acls


def _pipeline_acls(policy: Policy, topology: Topology) -> list[Acl]:
    pipeline = _user(PIPELINE_PRINCIPAL)
    acls: list[Acl] = []
    acls += _topic(pipeline, f"{topology.prefix}.ingest.", "read", pattern="prefixed")
    acls += _topic(pipeline, f"{topology.prefix}.deliver.", "write", pattern="prefixed")
    acls += _topic(pipeline, f"{topology.prefix}.dlq.", "write", pattern="prefixed")
    # The audit topic is read back to find where an erased subject went; the rights topic by every worker.
    acls += _topic(pipeline, topology.audit, "write", "read")
    # Each writer's checkpoints: written with its audit events, read back to recover its chains.
    acls += _topic(pipeline, topology.audit_checkpoints, "write", "read")
    acls += _topic(pipeline, topology.rights, "read")
    # Canary hits open incidents in the transaction that blocked them; every worker reads them for its metrics.
    acls += _topic(pipeline, topology.incidents, "write", "read")
    if policy.statistics.tables:
        # Workers write each shared record's cells; the statistics worker (a pipeline app) counts
        # them in its tables and publishes each table to the joint users it names.
        acls += _topic(pipeline, topology.stats_contributions, "write", "read")
        for changelog in topology.stats_changelogs:
            acls += _topic(pipeline, changelog, "write", "read")
        for table in policy.statistics.tables:
            acls += _topic(pipeline, topology.stats(table.id), "write")
    # The subject index (a pipeline app) keeps its rows in a changelog it writes and reads back.
    acls += _topic(pipeline, topology.subject_index_changelog, "write", "read")
    acls += _topic(pipeline, topology.corrections, "read")
    acls += _topic(pipeline, f"{topology.prefix}.notices.", "write", pattern="prefixed")
    acls += _topic(pipeline, topology.provision_records, "write")
    # Standing channels of the insurer's notice: their deliveries. Granted whatever the policy names
    # now: an erasure tombstones what a channel an earlier version named was provided.
    acls += _topic(pipeline, f"{topology.prefix}.provide.", "write", pattern="prefixed")
    if policy.handling is not None and policy.handling.channels:
        acls += _topic(pipeline, topology.supervision, "write")  # the entrustees' supervision log
    acls.append(Acl("group", f"{topology.prefix}.pipeline", "prefixed", pipeline, "read"))
    acls += [
        Acl("transactional_id", f"{topology.prefix}.pipeline", "prefixed", pipeline, op) for op in ("write", "describe")
    ]
    return acls


def _retention_acls(topology: Topology) -> list[Acl]:
    """The retention job reads what was delivered (the pipeline never does) and writes tombstones."""
    retention = _user(RETENTION_PRINCIPAL)
    acls: list[Acl] = []
    acls += _topic(retention, f"{topology.prefix}.deliver.", "read", "write", pattern="prefixed")
    acls += _topic(retention, f"{topology.prefix}.provide.", "read", "write", pattern="prefixed")
    acls += _topic(retention, f"{topology.prefix}.notices.", "write", pattern="prefixed")
    acls.append(Acl("group", f"{topology.prefix}.retention", "prefixed", retention, "read"))
    return acls


def _auditor_acls(policy: Policy, topology: Topology) -> list[Acl]:
    auditor = _user(AUDITOR_PRINCIPAL)
    acls: list[Acl] = []
    acls += _topic(auditor, topology.audit, "read")
    acls += _topic(auditor, topology.audit_checkpoints, "read")
    acls += _topic(auditor, topology.provision_records, "read")
    if policy.handling is not None and policy.handling.channels:
        acls += _topic(auditor, topology.supervision, "read")  # the insurer supervises its entrustees
    if policy.handling is not None and any(not BASES[c.basis].continuous for c in policy.handling.channels):
        # `jointuse provide` answers a case-by-case request: the desk reads the provider's own
        # records, and writes the provision record and its own sealed audit chain.
        acls += _topic(auditor, topology.ingest(policy.handling.provider), "read")
        acls += _topic(auditor, topology.provision_records, "write")
        acls += _topic(auditor, topology.audit, "write")
        acls += _topic(auditor, topology.audit_checkpoints, "write")
    for table in policy.statistics.tables:
        acls += _topic(auditor, topology.stats(table.id), "read")  # `jointuse stats show`
    # Rights requests come in through the privacy desk, which is the auditor's principal.
    acls += _topic(auditor, topology.rights, "write", "read")
    acls += _topic(auditor, topology.corrections, "write")
    # The privacy desk opens, files and closes incidents, and tells source companies whom one concerns.
    acls += _topic(auditor, topology.incidents, "write", "read")
    acls += _topic(auditor, f"{topology.prefix}.notices.", "write", pattern="prefixed")
    acls.append(Acl("group", f"{topology.prefix}.auditor.", "prefixed", auditor, "read"))
    # An incident and its notices are written in one transaction.
    acls += [
        Acl("transactional_id", f"{topology.prefix}.auditor.", "prefixed", auditor, op) for op in ("write", "describe")
    ]
    return acls


def _channel_acls(topology: Topology, channel: str) -> list[Acl]:
    """A standing channel reads its own deliveries only, in groups of its own."""
    principal = _user(channel)
    acls = _topic(principal, topology.provide(channel), "read")
    acls += _topic(principal, topology.notices(channel), "read")
    acls.append(Acl("group", company_group_prefix(topology, channel), "prefixed", principal, "read"))
    return acls


def managed(acl: Acl, topology: Topology) -> bool:
    """ACLs on resources in this deployment's namespace are ours to add and remove."""
    return acl.name.startswith(f"{topology.prefix}.")


@dataclass(frozen=True)
class AccessDiff:
    to_add: tuple[Acl, ...]
    to_remove: tuple[Acl, ...]

    @property
    def empty(self) -> bool:
        return not self.to_add and not self.to_remove


def diff_access(plan: AccessPlan, current: set[Acl], topology: Topology) -> AccessDiff:
    ours = {acl for acl in current if managed(acl, topology)}
    return AccessDiff(tuple(sorted(plan.acls - ours)), tuple(sorted(ours - plan.acls)))
