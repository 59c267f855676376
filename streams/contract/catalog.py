"""The topic catalog a group company reads: every topic of the deployment, who writes and reads it,
its key, payload schemas, headers and settings, and per delivery topic what the recipient may
receive. Built from the policy, the governed schemas, the topology and the access plan, so it
cannot say anything the pipeline and the broker's ACLs do not do. Pure: rendering to AsyncAPI and
Markdown (``streams.contract.render``) and writing files (the CLI) are elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from streams.contract.json_schemas import (
    AUDIT_JSON,
    CHANGELOG_JSON,
    CHECKPOINT_JSON,
    CONTRIBUTION_JSON,
    CORRECTION_JSON,
    INCIDENT_JSON,
    NOTICE_JSON,
    PROVISION_JSON,
    RIGHTS_JSON,
    SUPERVISION_JSON,
)
from streams.kafka.acl_plan import AccessPlan, company_transactional_prefix, plan_access
from streams.messages import (
    H_BASIS,
    H_DETAIL,
    H_FIELDS,
    H_ITEMS,
    H_ORIGINAL_OFFSET,
    H_ORIGINAL_PARTITION,
    H_ORIGINAL_TIMESTAMP,
    H_ORIGINAL_TOPIC,
    H_POLICY_VERSION,
    H_PURPOSES,
    H_REASON,
    H_SOURCE,
    H_TRACE_ID,
    H_TRACEPARENT,
)
from streams.policy.bases import BASES
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.policy.model import Policy, StatsTable
from streams.policy.provision import channel_schema
from streams.serde.governed import GovernedSchemas
from streams.topology import Topology

AVRO = "avro"
JSON = "json"
ORIGINAL_BYTES = "original-bytes"


@dataclass(frozen=True)
class Header:
    name: str
    meaning: str
    required: bool = True


@dataclass(frozen=True)
class Grant:
    """What one recipient receives of one source company's records: purposes (published order),
    items, under which notice version. A subject who opted out of marketing gets fewer purposes."""

    source: str
    purposes: tuple[str, ...]
    items: tuple[str, ...]


@dataclass(frozen=True)
class Channel:
    id: str
    address: str
    kind: str
    summary: str
    company: str | None  # the company the topic belongs to, for per-company topics
    key: str  # what the message key is
    payload: str  # AVRO | JSON | ORIGINAL_BYTES
    writers: tuple[str, ...] = ()  # principals the ACLs let write
    readers: tuple[str, ...] = ()  # principals the ACLs let read
    schemas: tuple[str, ...] = ()  # Avro schema file names (payload AVRO)
    json_schema: Mapping[str, Any] | None = None  # payload JSON
    headers: tuple[Header, ...] = ()
    config: Mapping[str, str] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    tombstones: str = ""  # what a null value means, where there are any


@dataclass(frozen=True)
class Catalog:
    prefix: str
    policy: Policy
    bootstrap_servers: str
    registry_url: str
    registry_vendor: str
    channels: tuple[Channel, ...]
    avro_schemas: Mapping[str, Mapping[str, Any]]  # file name -> Avro schema
    group_prefixes: Mapping[str, str]  # principal -> consumer-group prefix the ACLs allow
    transactional_prefixes: Mapping[str, str]  # company -> transactional-id prefix the ACLs allow

    def channel(self, channel_id: str) -> Channel:
        return next(c for c in self.channels if c.id == channel_id)


TRACE = Header(
    H_TRACE_ID,
    "Trace id (32 hex digits): the trace id of the input's W3C `traceparent` when it carried a valid one, "
    "else derived from its topic, partition and offset.",
)
DELIVERY_HEADERS = (
    Header(H_PURPOSES, "Comma-separated purpose ids this delivery may be used for, in the notice's order."),
    Header(H_POLICY_VERSION, "Version of the joint-use notice the delivery was decided under."),
    Header(H_SOURCE, "Company that produced the record."),
    TRACE,
    Header(H_ITEMS, "Comma-separated item ids the delivery holds; every other field is null."),
)
PROVIDE_HEADERS = (
    *DELIVERY_HEADERS,
    Header(H_BASIS, "The legal basis of the provision (streams/policy/bases.py): entrustment, reinsurance, ..."),
    Header(H_FIELDS, "Comma-separated paths of the insurer-only and sensitive fields it holds; none other is set."),
)
DEAD_LETTER_HEADERS = (
    Header(
        H_REASON, "Reason code of the rejection, e.g. not_a_record, ungoverned_schema, invalid_record, leak_canary."
    ),
    Header(H_DETAIL, "The path and rule that failed; never a value of the record."),
    Header(H_ORIGINAL_TOPIC, "Topic the input was read from."),
    Header(H_ORIGINAL_PARTITION, "Its partition."),
    Header(H_ORIGINAL_OFFSET, "Its offset."),
    Header(H_ORIGINAL_TIMESTAMP, "Its timestamp (ms since the epoch)."),
)
SUBJECT_KEY = "`<source company>:<customer_id>`, UTF-8"
PSEUDONYM_KEY = "The subject's keyed pseudonym (HMAC-SHA256 of source and customer id), UTF-8"

STATS_SCHEMA_FILE = "stats_table.v1.avsc"


def build_catalog(
    policies: PolicySet,
    governed: GovernedSchemas,
    topology: Topology,
    *,
    bootstrap_servers: str,
    registry_url: str,
    registry_vendor: str = "apicurio",
    stats_schema: Mapping[str, Any] | None = None,
) -> Catalog:
    """The catalog of the latest policy version: one channel per topic ``topics create`` makes."""
    policy = policies.latest
    plan = plan_access(policy, topology)
    schemas: dict[str, Mapping[str, Any]] = {}
    record_files, delivery_files = [], []
    for version in governed.versions:
        schemas[f"{version.name}.avsc"] = version.classified.raw
        schemas[f"{version.name}.delivery.avsc"] = version.delivery_raw
        record_files.append(f"{version.name}.avsc")
        delivery_files.append(f"{version.name}.delivery.avsc")
    engine = Engine(governed.latest.classified, policies)

    def who(address: str, operation: str) -> tuple[str, ...]:
        return _principals(plan, address, operation)

    channels: list[Channel] = []
    stats_tables = {topology.stats(t.id): t for t in policy.statistics.tables}
    for spec in topology.specs(policy):
        address = spec.name
        company = _company_of(address, policy, topology)
        if address == topology.ingest(company or ""):
            channel = _ingest(address, company, tuple(record_files))
        elif address == topology.deliver(company or ""):
            channel = _delivery(address, company, policy, engine, tuple(delivery_files))
        elif address == topology.dead_letters(company or ""):
            channel = _dead_letters(address, company)
        elif address == topology.notices(company or ""):
            channel = _notices(address, company)
        elif company in policy.channels_by_id and address == topology.provide(company or ""):
            file = f"{governed.latest.name}.provide.{company}.avsc"
            schemas[file] = channel_schema(governed.latest.classified, policy, company or "")
            channel = _provide(address, company or "", policy, file)
        elif address in stats_tables:
            if stats_schema is None:
                raise ValueError("the policy has statistics tables: give build_catalog their schema")
            schemas[STATS_SCHEMA_FILE] = stats_schema
            channel = _stats(address, stats_tables[address], policy)
        else:
            channel = _internal(address, topology)
        channels.append(
            replace(channel, writers=who(address, "write"), readers=who(address, "read"), config=dict(spec.config))
        )
    group_prefixes = {
        acl.principal.removeprefix("User:"): acl.name
        for acl in sorted(plan.acls)
        if acl.resource_type == "group" and acl.pattern == "prefixed"
    }
    transactional_prefixes = {user.id: company_transactional_prefix(topology, user.id) for user in policy.joint_users}
    return Catalog(
        prefix=topology.prefix,
        policy=policy,
        bootstrap_servers=bootstrap_servers,
        registry_url=registry_url,
        registry_vendor=registry_vendor,
        channels=tuple(channels),
        avro_schemas=schemas,
        group_prefixes=group_prefixes,
        transactional_prefixes=transactional_prefixes,
    )


def _ingest(address: str, company: str | None, record_files: tuple[str, ...]) -> Channel:
    return Channel(
        id=f"ingest-{company}",
        kind="ingest",
        summary=f"{company} produces its customer records here; the pipeline decides each one.",
        company=company,
        key="`customer_id`, UTF-8",
        payload=AVRO,
        schemas=record_files,
        headers=(
            Header(
                H_TRACEPARENT,
                "Optional: a W3C trace context, version 00 (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase); "
                "its trace id becomes the delivery's and audit event's trace id. No other header of yours "
                "reaches a recipient; headers named `jointuse-*` are ignored and counted.",
                required=False,
            ),
        ),
        address=address,
    )


def _delivery(
    address: str, company: str | None, policy: Policy, engine: Engine, delivery_files: tuple[str, ...]
) -> Channel:
    grants = tuple(
        Grant(source.id, purposes, items)
        for source in policy.joint_users
        for recipient, purposes, items in engine.routes(policy, policy, source.id, opted_out=False)
        if recipient == company
    )
    return Channel(
        id=f"deliver-{company}",
        kind="delivery",
        summary=f"What {company} may receive of the other joint users' customers, under notice "
        f"{policy.notice.id} version {policy.version}. Fields outside the items are null.",
        company=company,
        key=SUBJECT_KEY,
        payload=AVRO,
        schemas=delivery_files,
        headers=DELIVERY_HEADERS,
        grants=grants,
        tombstones="Erase this subject: an erasure request or a passed retention (a notice follows).",
        address=address,
    )


def _dead_letters(address: str, company: str | None) -> Channel:
    return Channel(
        id=f"dead-letters-{company}",
        kind="dead-letter",
        summary=f"{company}'s inputs that could not be decided, as produced, with the reason.",
        company=company,
        key="The input's key, as produced",
        payload=ORIGINAL_BYTES,
        headers=DEAD_LETTER_HEADERS,
        address=address,
    )


def _notices(address: str, company: str | None) -> Channel:
    return Channel(
        id=f"notices-{company}",
        kind="notices",
        summary=f"What {company} must erase: one notice per subject and reason.",
        company=company,
        key=SUBJECT_KEY,
        payload=JSON,
        json_schema=NOTICE_JSON,
        address=address,
    )


def _provide(address: str, company: str, policy: Policy, file: str) -> Channel:
    """A channel of the insurer's notice, its records in ``file`` (the channel's own schema)."""
    provided = policy.channels_by_id[company]
    basis = BASES[provided.basis]
    return Channel(
        id=f"provide-{company}",
        kind="provide",
        summary=f"What {company} receives of the insurer's customers under {basis.en.lower()} "
        f"({basis.article}), for {', '.join(provided.purposes)}.",
        company=company,
        key=SUBJECT_KEY,
        payload=AVRO,
        schemas=(file,),
        headers=PROVIDE_HEADERS,
        tombstones="Erase this subject: an erasure request or a passed retention (a notice follows).",
        address=address,
    )


def _stats(address: str, table: StatsTable, policy: Policy) -> Channel:
    return Channel(
        id=f"stats-{table.id}",
        kind="stats",
        summary=f"Statistics {table.id} ({table.window}, by {', '.join(table.dimensions)}): counts of "
        f"distinct subjects, every published cell at least k = {policy.statistics.k}, small cells "
        "protected (docs/statistics.md). The latest revision of a window replaces the earlier ones.",
        company=None,
        key="`<table>:<window's first day>`, UTF-8",
        payload=AVRO,
        schemas=(STATS_SCHEMA_FILE,),
        address=address,
    )


# The pipeline's own topics, by id: summary, key, payload and its JSON Schema (None: not described).
INTERNAL: Mapping[str, tuple[str, str, str, Mapping[str, Any] | None]] = {
    "audit": (
        "One decision per input, pseudonymous; the record of what crossed company boundaries.",
        PSEUDONYM_KEY,
        JSON,
        AUDIT_JSON,
    ),
    "audit-checkpoints": (
        "Signed heads of the audit chains, one writer and partition per record: what `audit verify` checks.",
        "`<writer>/<audit partition>`, UTF-8",
        JSON,
        CHECKPOINT_JSON,
    ),
    "incidents": (
        "Leak incidents as events, read by the privacy desk: `jointuse incident list|report`.",
        "The incident id, UTF-8",
        JSON,
        INCIDENT_JSON,
    ),
    "stats-contributions": (
        "What each shared record adds to the statistics tables (cells, no value), a transaction's in one "
        "message, read by the statistics worker.",
        "`contributions`, UTF-8 (one partition)",
        JSON,
        CONTRIBUTION_JSON,
    ),
    "stats-subjects-changelog": (
        "The statistics worker's cells per subject and window (faust changelog), compacted.",
        "`<table>|<window>|<pseudonym>`, UTF-8",
        JSON,
        None,
    ),
    "stats-published-changelog": (
        "What the statistics worker published per window (what a revision builds on), compacted.",
        "`<table>|<window>`, UTF-8",
        JSON,
        None,
    ),
    "rights": (
        "Rights requests, compacted per subject: the latest one per subject holds.",
        SUBJECT_KEY,
        JSON,
        RIGHTS_JSON,
    ),
    "corrections": (
        "Corrections filed by the privacy desk, keyed like the audit topic.",
        PSEUDONYM_KEY,
        JSON,
        CORRECTION_JSON,
    ),
    "index-changelog": (
        "The subject index's rows (faust changelog), compacted.",
        PSEUDONYM_KEY,
        JSON,
        CHANGELOG_JSON,
    ),
    "provision-records": (
        "Provision records (APPI Art. 29) of the insurer's channels, abroad included, and of case-by-case "
        "provisions; kept 3 years by default.",
        SUBJECT_KEY,
        JSON,
        PROVISION_JSON,
    ),
    "supervision": (
        "The entrustees' supervision log (APPI Art. 25): what each received, under which contract and task.",
        "The entrustee's id",
        JSON,
        SUPERVISION_JSON,
    ),
    "dead-letters-rights": (
        "Rights requests that could not be read.",
        "The input's key, as produced",
        ORIGINAL_BYTES,
        None,
    ),
}


def _internal(address: str, topology: Topology) -> Channel:
    """The pipeline's own topics: listed so a company sees the whole deployment, read by nobody outside."""
    ids = {
        topology.audit: "audit",
        topology.audit_checkpoints: "audit-checkpoints",
        topology.incidents: "incidents",
        topology.stats_contributions: "stats-contributions",
        topology.stats_changelogs[0]: "stats-subjects-changelog",
        topology.stats_changelogs[1]: "stats-published-changelog",
        topology.rights: "rights",
        topology.corrections: "corrections",
        topology.subject_index_changelog: "index-changelog",
        topology.provision_records: "provision-records",
        topology.supervision: "supervision",
        topology.dead_letters("rights"): "dead-letters-rights",
    }
    kind = ids[address]
    summary, key, payload, schema = INTERNAL[kind]
    return Channel(
        id=kind,
        kind=kind if kind != "dead-letters-rights" else "dead-letter",
        summary=summary,
        company=None,
        key=key,
        payload=payload,
        json_schema=schema,
        headers=DEAD_LETTER_HEADERS if payload == ORIGINAL_BYTES else (),
        address=address,
    )


def _company_of(address: str, policy: Policy, topology: Topology) -> str | None:
    for company in topology.notified(policy):
        if address in (
            topology.ingest(company),
            topology.deliver(company),
            topology.dead_letters(company),
            topology.notices(company),
            topology.provide(company),
        ):
            return company
    return None


def _principals(plan: AccessPlan, address: str, operation: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            {
                acl.principal.removeprefix("User:")
                for acl in plan.acls
                if acl.operation == operation and acl.permission == "allow" and acl.covers("topic", address)
            }
        )
    )
