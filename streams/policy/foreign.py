"""Provision to a recipient abroad (APPI Arts. 28-30): a gate, separate from joint use.

A reinsurer abroad is a third party, never a joint user. A record goes to it only when the subject
consented to the transfer, the recipient is in an allowed country, the record is the provider's own
customer's, and no stop-of-use request covers the subject; it carries only the items and insurer
fields the policy names for that recipient, never secrecy-of-communications or sensitive data. Each
provision yields a provision record (Art. 29) as a value. Pure: no Kafka, no clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.policy.classification import (
    CLASS_PROPERTY,
    ITEM_PROPERTY,
    ClassifiedSchema,
    FieldClass,
    FieldNode,
    filtered_schema,
)
from streams.policy.model import ForeignRecipient, Policy
from streams.policy.projection import record_projector
from streams.policy.pseudonym import subject_key

FOREIGN_PROVISION = "third_party_provision"  # the ``type`` of a provision record abroad
_NESTED_KEPT = frozenset({FieldClass.IDENTIFIER, FieldClass.ITEM, FieldClass.INSURER_ONLY})


class ForeignReason(StrEnum):
    PROVIDED = "provided"
    NOT_PROVIDER = "not_provider"  # another company's customer: only the provider's own may go abroad
    NO_CONSENT = "no_consent"
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    STOP_OF_USE = "stop_of_use"
    NOT_A_RECORD = "not_a_record"


@dataclass(frozen=True)
class ForeignDecision:
    reason: ForeignReason
    record: Mapping[str, Any] | None = None  # what the recipient receives, when provided
    provision: Mapping[str, Any] | None = None  # the provision record, when provided

    @property
    def provided(self) -> bool:
        return self.reason is ForeignReason.PROVIDED


class UnknownRecipient(ValueError):
    """The recipient is not in the policy's foreign provision."""


def find_recipient(policy: Policy, recipient_id: str) -> ForeignRecipient:
    for recipient in policy.foreign_provision.recipients:
        if recipient.id == recipient_id:
            return recipient
    raise UnknownRecipient(f"foreign recipient {recipient_id!r} is not in policy version {policy.version}")


class ForeignGate:
    def __init__(self, schema: ClassifiedSchema, policy: Policy, recipient_id: str) -> None:
        self.schema = schema
        self.policy = policy
        self.recipient = find_recipient(policy, recipient_id)
        self.items = frozenset(self.recipient.items)
        self.insurer_fields = frozenset(self.recipient.insurer_fields)
        self._project = record_projector(schema.fields, self._kept, trusted=False)

    def _kept(self, node: FieldNode) -> bool:
        if node.path != node.name:  # a nested field
            return node.cls in _NESTED_KEPT
        if node.cls is FieldClass.IDENTIFIER:
            return True
        if node.cls is FieldClass.ITEM:
            return node.item in self.items
        return node.cls is FieldClass.INSURER_ONLY and node.name in self.insurer_fields

    def decide(
        self, record: Any, source: str, *, now: dt.datetime, stopped: bool = False, input_ref: Mapping[str, Any]
    ) -> ForeignDecision:
        if type(record) is not dict or type(record.get("customer_id")) is not str:
            return ForeignDecision(ForeignReason.NOT_A_RECORD)
        # Checked here as well as when the policy loads: a gate must not rely on its caller.
        if self.recipient.country not in self.policy.foreign_provision.allowed_countries:
            return ForeignDecision(ForeignReason.COUNTRY_NOT_ALLOWED)
        if source != self.policy.foreign_provision.provider or record.get("source_company") != source:
            return ForeignDecision(ForeignReason.NOT_PROVIDER)
        consent = record.get("consent") or {}
        if consent.get("foreign_transfer_consent") is not True:
            return ForeignDecision(ForeignReason.NO_CONSENT)
        if stopped:
            return ForeignDecision(ForeignReason.STOP_OF_USE)
        projected = self._project(record)
        provided_items = sorted(
            {n.item for n in self.schema.fields if n.cls is FieldClass.ITEM and n.item and n.name in projected}
        )
        provided_insurer = sorted(n for n in self.insurer_fields if n in projected)
        provision = {
            "type": FOREIGN_PROVISION,
            "recipient": self.recipient.id,
            "recipient_name": self.recipient.name,
            "country": self.recipient.country,
            "subject_key": subject_key(source, record["customer_id"]),
            "items": provided_items,
            "insurer_fields": provided_insurer,
            "consent": "foreign_transfer_consent",
            "provided_at": now.isoformat(),
            "policy_version": self.policy.version,
            "input": dict(input_ref),
        }
        return ForeignDecision(ForeignReason.PROVIDED, projected, provision)


def foreign_schema(schema: ClassifiedSchema, policy: Policy, recipient_id: str) -> dict[str, Any]:
    """The Avro schema of what one foreign recipient receives."""
    recipient = find_recipient(policy, recipient_id)
    items, insurer = frozenset(recipient.items), frozenset(recipient.insurer_fields)

    def keep(spec: Mapping[str, Any], top: bool) -> bool:
        cls = spec.get(CLASS_PROPERTY)
        if not top:
            return cls in _NESTED_KEPT
        return (
            cls == FieldClass.IDENTIFIER
            or (cls == FieldClass.ITEM and spec.get(ITEM_PROPERTY) in items)
            or (cls == FieldClass.INSURER_ONLY and spec.get("name") in insurer)
        )

    return filtered_schema(
        schema.raw,
        keep=keep,
        name_suffix=f"Foreign{''.join(p.capitalize() for p in recipient.id.split('-'))}",
        doc=f"What foreign recipient {recipient.id} receives under consent (APPI Art. 28).",
    )
