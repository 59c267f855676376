"""Where a rights request finds its subject: the subject index's rows (the erasure processor's
lookup) and the audit topic scanned whole (reports compared against the index). Adapters over Kafka
and the index's HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.audit.core.event import AuditEvent, readable
from streams.kafka.reader import scan_topic
from streams.rights.core.subject_index import SubjectRow
from streams.rights.erasure import RowsLookup
from streams.rights.index_client import SubjectIndex
from streams.topology import Topology


def audit_lookup(
    kafka: dict[str, Any], topology: Topology, *, group_id: str
) -> Callable[[frozenset[str]], list[AuditEvent]]:
    """Audit events of the given subject hashes, read from the whole audit topic."""

    def lookup(subjects: frozenset[str]) -> list[AuditEvent]:
        needles = [f'"subject":"{s}"'.encode() for s in subjects]
        scanned = scan_topic(kafka, topology.audit, group_id=group_id, contains=needles)
        return list(readable(message.value() for message in scanned))

    return lookup


def index_lookup(index: SubjectIndex, *, wait_seconds: float) -> RowsLookup:
    """The rows of the given pseudonyms, once the index has applied every audit event committed
    before the lookup (``SubjectIndexUnavailable`` otherwise: the request waits and is tried again)."""

    def lookup(subjects: frozenset[str]) -> list[SubjectRow]:
        answers = [index.lookup(subject, wait_seconds=wait_seconds) for subject in sorted(subjects)]
        return [a.row for a in answers if a.row is not None]

    return lookup
