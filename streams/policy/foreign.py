"""Provision to a recipient abroad (APPI Arts. 28-30): a gate, separate from joint use.

A reinsurer abroad is a third party, never a joint user. A record goes to it only when the subject
consented to the transfer, the recipient is in an allowed country, the record is the provider's own
customer's, and no stop-of-use request covers the subject; it carries only the items and insurer
fields the policy names for that recipient, never secrecy-of-communications or sensitive data. Each
provision yields a provision record (Art. 29) as a value. Pure: no Kafka, no clock.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.policy.classification import (
    CLASS_PROPERTY,
    ClassifiedSchema,
    FieldClass,
    FieldNode,
    TypeNode,
    nullable_type,
)
from streams.policy.engine import projector_of
from streams.policy.model import ForeignRecipient, Policy
from streams.policy.rights import subject_key

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
        self._project = _record_projector(schema.fields, self._kept_top)

    def _kept_top(self, node: FieldNode) -> bool:
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
            "type": "third_party_provision",
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


def _record_projector(fields: tuple[FieldNode, ...], keep: Callable[[FieldNode], bool]) -> Callable[[Any], Any]:
    return projector_of([(f.name, _value_projector(f.type) if f.children else None) for f in fields if keep(f)])


def _value_projector(node: TypeNode) -> Callable[[Any], Any]:
    if node.kind == "record":
        return _record_projector(node.fields, lambda f: f.cls in _NESTED_KEPT)
    if node.kind in ("array", "map") and node.items is not None:
        element = _value_projector(node.items)
        if node.kind == "array":
            return lambda values: [element(v) for v in values]
        return lambda values: {k: element(v) for k, v in values.items()}
    if node.kind == "union":
        inner = [b for b in node.branches if b.kind != "null"]
        if len(inner) == 1:
            only = _value_projector(inner[0])
            return lambda value: None if value is None else only(value)
    return lambda value: value


def foreign_schema(schema: ClassifiedSchema, policy: Policy, recipient_id: str) -> dict[str, Any]:
    """The Avro schema of what one foreign recipient receives."""
    recipient = find_recipient(policy, recipient_id)
    items, insurer = frozenset(recipient.items), frozenset(recipient.insurer_fields)
    raw = copy.deepcopy(dict(schema.raw))
    raw["name"] = f"{raw['name']}Foreign{''.join(p.capitalize() for p in recipient.id.split('-'))}"
    raw["doc"] = f"What foreign recipient {recipient.id} receives under consent (APPI Art. 28)."
    top = []
    for spec in raw["fields"]:
        cls = spec.get(CLASS_PROPERTY)
        if cls == FieldClass.IDENTIFIER:
            top.append(spec)
        elif (cls == FieldClass.ITEM and spec.get("jointuse.item") in items) or (
            cls == FieldClass.INSURER_ONLY and spec["name"] in insurer
        ):
            top.append({**spec, "type": nullable_type(_nested_type(spec["type"])), "default": None})
    raw["fields"] = top
    return raw


def _nested_type(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_nested_type(s) for s in schema]
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            fields = schema["fields"]
            kept = [{**f, "type": _nested_type(f["type"])} for f in fields if f.get(CLASS_PROPERTY) in _NESTED_KEPT]
            return {**schema, "fields": kept}
        if kind == "array":
            return {**schema, "items": _nested_type(schema["items"])}
        if kind == "map":
            return {**schema, "values": _nested_type(schema["values"])}
    return schema
