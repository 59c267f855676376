"""Where a rights request finds its subject: the subject index's rows (the erasure processor's
lookup), the audit topic scanned whole (reports compared against the index), and the provision
records of foreign recipients. Adapters over Kafka and the index's HTTP API."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from streams.audit.event import AuditEvent, readable
from streams.kafka.reader import scan_topic
from streams.processors.erasure import ProvisionLookup, RowsLookup
from streams.rights.index_client import SubjectIndex
from streams.rights.subject_index import SubjectRow
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


def provision_lookup(kafka: dict[str, Any], topology: Topology, *, group_id: str) -> ProvisionLookup:
    """Provision records (foreign recipients) of one subject key."""

    def lookup(key: str) -> list[Mapping[str, Any]]:
        needle = json.dumps({"subject_key": key}, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()
        found = []
        for message in scan_topic(kafka, topology.provision_records, group_id=group_id, contains=[needle]):
            try:
                record = json.loads(message.value() or b"{}")
            except ValueError:
                continue
            if record.get("subject_key") == key:
                found.append(record)
        return found

    return lookup
