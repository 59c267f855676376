"""Topic names and settings of the pipeline, derived from the policy (pure)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from streams.policy.bases import BASES
from streams.policy.model import Policy, retention_days

SCHEMA_MAJOR = "v1"
SUBJECT_INDEX_TABLE = "subjects"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None  # None: the topology's default


@dataclass(frozen=True)
class Topology:
    prefix: str = "jointuse"

    def ingest(self, company: str) -> str:
        return f"{self.prefix}.ingest.{company}.customer.{SCHEMA_MAJOR}"

    def deliver(self, company: str) -> str:
        return f"{self.prefix}.deliver.{company}.customer.{SCHEMA_MAJOR}"

    def dead_letters(self, company: str) -> str:
        return f"{self.prefix}.dlq.{company}"

    @property
    def audit(self) -> str:
        return f"{self.prefix}.audit.{SCHEMA_MAJOR}"

    @property
    def audit_checkpoints(self) -> str:
        """Signed heads of the audit chains (streams.audit): what ``audit verify`` checks against."""
        return f"{self.prefix}.audit-checkpoints.{SCHEMA_MAJOR}"

    @property
    def incidents(self) -> str:
        """Leak incidents (APPI Art. 26) as events keyed by incident id: canary hits written by the
        workers, and what operators open, find, file and close (streams.incidents.core.book)."""
        return f"{self.prefix}.incidents.{SCHEMA_MAJOR}"

    @property
    def stats_contributions(self) -> str:
        """What each shared record adds to the statistics tables, keyed by subject pseudonym: one
        partition, read by one statistics worker, which needs every subject to count exactly."""
        return f"{self.prefix}.stats-contributions.{SCHEMA_MAJOR}"

    def stats(self, table: str) -> str:
        """A statistics table's publications, keyed ``<table>:<window's first day>`` (compacted:
        the latest revision of each window stays)."""
        return f"{self.prefix}.stats.{table}.{SCHEMA_MAJOR}"

    @property
    def stats_app(self) -> str:
        """The statistics worker's faust app id and consumer group."""
        return f"{self.prefix}.pipeline.stats"

    @property
    def stats_changelogs(self) -> tuple[str, str]:
        """The changelogs of its tables: the cells each subject is in per window, and what was
        published per window (what a revision builds on)."""
        return (f"{self.stats_app}-stats-subjects-changelog", f"{self.stats_app}-stats-published-changelog")

    @property
    def rights(self) -> str:
        """Stop-of-use / erasure requests, compacted per subject (``source:customer_id``)."""
        return f"{self.prefix}.rights.{SCHEMA_MAJOR}"

    def notices(self, recipient: str) -> str:
        """Erasure and retention notices to one recipient. One topic per recipient, because a notice
        names a subject key, and another company must not learn whom a recipient holds."""
        return f"{self.prefix}.notices.{recipient}.{SCHEMA_MAJOR}"

    @property
    def corrections(self) -> str:
        """Corrections (訂正) filed by the privacy desk, keyed by the subject's pseudonym like the
        audit topic and partitioned like it, so the subject index folds both into one row. Not on
        the rights topic: compacted per subject, a correction there would replace a stop."""
        return f"{self.prefix}.corrections.{SCHEMA_MAJOR}"

    @property
    def subject_index_app(self) -> str:
        """The subject index's faust app id, which is also its consumer group."""
        return f"{self.prefix}.pipeline.index"

    @property
    def subject_index_changelog(self) -> str:
        """The changelog of the index's ``subjects`` table (faust's name for it): what rebuilds the
        rows after a restart or a rebalance. Partitioned like the audit topic, whose partition
        each row's update goes to."""
        return f"{self.subject_index_app}-{SUBJECT_INDEX_TABLE}-changelog"

    @property
    def provision_records(self) -> str:
        """Provision records (APPI Art. 29) of the insurer's channels, abroad included, and of every
        case-by-case provision."""
        return f"{self.prefix}.provision-records.{SCHEMA_MAJOR}"

    def provide(self, channel: str) -> str:
        """What a standing channel of the insurer's notice receives (an entrustee, a reinsurer at home
        or abroad, the association): ``Policy.handling.channels``."""
        return f"{self.prefix}.provide.{channel}.customer.{SCHEMA_MAJOR}"

    @property
    def supervision(self) -> str:
        """The supervision log of entrustees (APPI Art. 25): what each received, under which
        contract; keyed by the entrustee's id."""
        return f"{self.prefix}.supervision.{SCHEMA_MAJOR}"

    def ingest_pattern(self) -> str:
        """A subscription regex for every company's ingest topic."""
        return f"^{re.escape(self.prefix)}\\.ingest\\.[^.]+\\.customer\\.{SCHEMA_MAJOR}$"

    def company_of_ingest(self, topic: str) -> str | None:
        return _company_of_ingest(self.prefix, topic)

    @staticmethod
    def notified(policy: Policy) -> list[str]:
        """Every recipient told of erasures and retention: joint users and the standing channels of
        the insurer's notice (recipients abroad included)."""
        channels = policy.handling.channels if policy.handling is not None else ()
        return [u.id for u in policy.joint_users] + [c.id for c in channels if BASES[c.basis].continuous]

    def specs(self, policy: Policy) -> list[TopicSpec]:
        """Every topic the pipeline needs for the joint users of ``policy``."""
        # Deliveries are erased once the longest-kept item's retention has passed.
        longest_ms = max(retention_days(i.retention) for i in policy.items) * 86_400_000
        specs: list[TopicSpec] = []
        for user in policy.joint_users:
            specs.append(TopicSpec(self.ingest(user.id)))
            specs.append(
                TopicSpec(
                    self.deliver(user.id),
                    {
                        "cleanup.policy": "compact,delete",
                        "retention.ms": str(longest_ms),
                        "min.compaction.lag.ms": "0",
                    },
                )
            )
            specs.append(TopicSpec(self.dead_letters(user.id), {"retention.ms": str(30 * 86_400_000)}))
        specs.append(TopicSpec(self.audit, {"retention.ms": "-1"}))
        specs.append(TopicSpec(self.audit_checkpoints, {"retention.ms": "-1"}))
        # Incidents are evidence of the response (the PPC may ask years later): never deleted by age.
        specs.append(TopicSpec(self.incidents, {"retention.ms": "-1"}, partitions=1))
        if policy.statistics.tables:
            # Contributions are needed until their window's last revision: kept as long as deliveries.
            specs.append(TopicSpec(self.stats_contributions, {"retention.ms": str(longest_ms)}, partitions=1))
            latest_per_key = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
            for changelog in self.stats_changelogs:
                specs.append(TopicSpec(changelog, latest_per_key, partitions=1))
            for table in policy.statistics.tables:
                specs.append(TopicSpec(self.stats(table.id), latest_per_key))
        # One row per subject, the latest wins: compacted, never deleted by age.
        compacted = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
        specs.append(TopicSpec(self.subject_index_changelog, compacted))
        specs.append(TopicSpec(self.corrections, {"retention.ms": "-1"}))
        # The latest request per subject must outlive everything: compacted, never deleted by age.
        specs.append(TopicSpec(self.rights, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}))
        for company in self.notified(policy):
            specs.append(TopicSpec(self.notices(company), {"retention.ms": str(longest_ms)}))
        specs.append(TopicSpec(self.dead_letters("rights"), {"retention.ms": str(30 * 86_400_000)}))
        # Provision records are kept 3 years by default (APPI rules, Art. 14; the policy's
        # handling.provision_record_retention), and the supervision log as long; longer does no harm.
        records_days = retention_days(policy.handling.provision_record_retention) if policy.handling else 3 * 365
        records_ms = str(max(longest_ms, records_days * 86_400_000))
        specs.append(TopicSpec(self.provision_records, {"retention.ms": records_ms}))
        if policy.handling is not None and policy.handling.channels:
            specs.append(TopicSpec(self.supervision, {"retention.ms": records_ms}))
        for channel in policy.handling.channels if policy.handling is not None else ():
            if not BASES[channel.basis].continuous:
                continue  # provided case by case: through the operator's command, not a topic
            specs.append(_recipient_topic(self.provide(channel.id), policy, channel.items, longest_ms))
        return specs


def _recipient_topic(name: str, policy: Policy, items: tuple[str, ...], longest_ms: int) -> TopicSpec:
    """A recipient's topic outside joint use: compacted per subject, each delivery kept as long as
    the longest-kept of the items it may hold (the notice's longest without any)."""
    kept = [retention_days(i.retention) for i in policy.items if i.id in items]
    keep_ms = max(kept or [0]) * 86_400_000 or longest_ms
    return TopicSpec(
        name, {"cleanup.policy": "compact,delete", "retention.ms": str(keep_ms), "min.compaction.lag.ms": "0"}
    )


@functools.lru_cache(maxsize=1024)
def _company_of_ingest(prefix: str, topic: str) -> str | None:
    """The company whose ingest topic ``topic`` is (asked for every input: remembered per topic)."""
    head, tail = f"{prefix}.ingest.", f".customer.{SCHEMA_MAJOR}"
    if topic.startswith(head) and topic.endswith(tail):
        return topic[len(head) : -len(tail)] or None
    return None
