"""The JSON Schema of each topic whose payload is JSON, as the catalog publishes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.audit.core import event as audit_event

NOTICE_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "Erase your copies of this subject (an erasure request or a passed retention), or: a leak "
    "incident concerns this customer of yours (leak_incident). Holds no personal data but the key.",
    "required": ["type", "recipient", "subject_key", "issued_at"],
    "properties": {
        "type": {"type": "string", "enum": ["erasure", "retention_expired", "leak_incident"]},
        "incident_id": {"type": "string", "description": "The incident (leak_incident); see `jointuse incident`."},
        "subject": {
            "type": ["string", "null"],
            "description": "The subject's pseudonym, as in the audit (leak_incident).",
        },
        "recipients": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Who received the record, or would have if it was blocked (leak_incident).",
        },
        "classes": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The classes of data concerned, never their values (leak_incident).",
        },
        "blocked": {"type": "boolean", "description": "The leak canary stopped it: nothing was sent (leak_incident)."},
        "input": {
            "type": ["object", "null"],
            "description": "Where the record was on your ingest topic (leak_incident).",
        },
        "recipient": {"type": "string", "description": "The company told."},
        "subject_key": {
            "type": "string",
            "description": "`<source>:<customer_id>`, the key of the deliveries to erase.",
        },
        "source": {"type": "string", "description": "Company whose customer asked (erasure)."},
        "request_id": {"type": "string", "description": "Id of the erasure request (erasure)."},
        "requested_at": {"type": "string", "format": "date-time", "description": "When the customer asked (erasure)."},
        "expired_at": {
            "type": "string",
            "format": "date-time",
            "description": "When the retention passed (retention_expired).",
        },
        "issued_at": {"type": "string", "format": "date-time", "description": "When the notice was written."},
    },
}
AUDIT_JSON: Mapping[str, Any] = audit_event.json_schema()
RIGHTS_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "A stop-of-use, resume or erasure request (利用停止・消去), filed by the privacy desk.",
    "properties": {
        "request_id": {"type": "string"},
        "action": {"type": "string"},
        "customer_id": {"type": "string"},
        "source": {"type": "string"},
        "requested_at": {"type": "string", "format": "date-time"},
    },
}
CORRECTION_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "A correction (訂正): the source republished a corrected record of the subject.",
    "properties": {
        "request_id": {"type": "string"},
        "subject": {"type": "string"},
        "source": {"type": "string"},
        "at_ms": {"type": "integer"},
    },
}
PROVISION_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "Record of a provision through a channel of the insurer's notice (abroad: with its "
    "country) where its basis needs one (APPI Art. 29), or of a case-by-case provision: who, what, when, "
    "under which consent or request.",
}
SUPERVISION_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "What an entrustee received (recipient, basis, subject, items, fields, purposes, time), "
    "under which contract and task. No value of the record.",
    "required": ["type", "recipient", "contract", "task_ja", "provided_at"],
}
CHECKPOINT_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "A writer's audit chain head in one partition, with an Ed25519 signature over it.",
    "properties": {"checkpoint": {"type": "object"}, "signature": {"type": "string"}},
}
INCIDENT_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "One event of a leak incident (APPI Art. 26): a canary hit, or an operator's open, finding, "
    "filed report or close. Names and counts only, never a value.",
    "required": ["type", "incident_id", "at_ms"],
    "properties": {
        "type": {"type": "string", "enum": ["opened", "canary_hit", "finding", "filed", "closed"]},
        "incident_id": {"type": "string"},
        "at_ms": {"type": "integer"},
    },
}
_CONTRIBUTION: Mapping[str, Any] = {
    "type": "object",
    "description": "One shared record's subject and cells per statistics table and window: labels from the "
    "policy's closed lists.",
    "required": ["subject", "at_ms", "tables"],
    "properties": {
        "subject": {"type": "string", "description": "The subject's keyed pseudonym"},
        "at_ms": {"type": "integer"},
        "policy_version": {"type": "string"},
        "tables": {"type": "object"},
    },
}
CONTRIBUTION_JSON: Mapping[str, Any] = {
    "type": "array",
    "description": "The contributions of one pipeline transaction (streams.stats.core.wire).",
    "items": _CONTRIBUTION,
}
CHANGELOG_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "The subject index's row for one subject (faust table changelog).",
}
