"""What a provision through a channel of the insurer's notice leaves behind, as values: the schema
of what the channel receives, the provision record (APPI Art. 29) where its basis needs one, and
the supervision log entry (Art. 25) of an entrustee, and the messages the pipeline writes them as.
Pure: the caller passes the time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.messages import Decided, OutMessage, Run
from streams.policy.bases import BASES
from streams.policy.classification import CLASS_PROPERTY, ITEM_PROPERTY, ClassifiedSchema, FieldClass, filtered_schema
from streams.policy.decision import Delivery
from streams.policy.model import Channel, Policy

PROVISION_RECORD = "provision"  # the ``type`` of a provision record through a channel
SUPERVISION_ENTRY = "entrustment_supervision"


def channel_schema(schema: ClassifiedSchema, policy: Policy, channel_id: str) -> dict[str, Any]:
    """The Avro schema of what one channel receives: identifiers, its items, the insurer-only fields
    it is given with their parts, and the sensitive fields its entry names (every kept field optional,
    so a record the engine gives less of still encodes)."""
    channel = policy.channels_by_id[channel_id]
    basis = BASES[channel.basis]
    items = frozenset(channel.items)
    insurer = frozenset(channel.insurer_fields) if FieldClass.INSURER_ONLY in basis.classes else frozenset()
    sensitive = frozenset(channel.sensitive_fields) if basis.may_carry_sensitive else frozenset()
    nested_sensitive = frozenset(path.rsplit(".", 1)[-1] for path in sensitive if "." in path)

    def keep(spec: Mapping[str, Any], top: bool) -> bool:
        cls = spec.get(CLASS_PROPERTY)
        if cls == FieldClass.IDENTIFIER:
            return True
        if cls == FieldClass.ITEM:
            return not top or spec.get(ITEM_PROPERTY) in items
        if cls == FieldClass.INSURER_ONLY:
            return not top or spec.get("name") in insurer
        if cls == FieldClass.SENSITIVE:
            return spec.get("name") in (sensitive if top else nested_sensitive)
        return False

    return filtered_schema(
        schema.raw,
        keep=keep,
        name_suffix="Channel" + "".join(part.capitalize() for part in channel_id.split("-")),
        doc=f"What {channel_id} receives under {basis.en.lower()} ({basis.article}).",
    )


@dataclass(frozen=True)
class Provision:
    """One provision through a channel, and what it leaves behind: its provision record (Art. 29)
    where the basis needs one, and an entrustee's supervision entry (Art. 25). No value of the
    record is in either."""

    channel: Channel
    delivery: Delivery
    subject: str  # the subject's pseudonym
    subject_key: str  # source:customer_id
    source: str
    policy_version: str | None
    provided_at: dt.datetime
    input_ref: Mapping[str, Any]
    request: str | None = None  # a case-by-case provision's request

    def record(self) -> dict[str, Any] | None:
        """The provision record (date, recipient, the person, the items, and the consent or request
        it rests on), or None where the basis needs none. A case-by-case provision always has one,
        Art. 29 or not (a law's request needs none): it is how a request is known to be answered."""
        required = BASES[self.channel.basis].provision_record
        if not required and self.request is None:
            return None
        return {
            "type": PROVISION_RECORD,
            **self._what_was_provided(),
            "consent": self.channel.consent_reference or None,
            "request": self.request,
            "article_29": required,
        }

    def supervision(self) -> dict[str, Any] | None:
        """What an entrustee received, under which contract and task; None for any other basis."""
        if not BASES[self.channel.basis].supervision_log:
            return None
        return {
            "type": SUPERVISION_ENTRY,
            **self._what_was_provided(),
            "contract": self.channel.contract,
            "task_ja": self.channel.task_ja,
        }

    def _what_was_provided(self) -> dict[str, Any]:
        basis = BASES[self.channel.basis]
        return {
            "recipient": self.channel.id,
            "recipient_name": self.channel.name_ja,
            "basis": basis.id.value,
            "article": basis.article,
            "subject": self.subject,
            # Art. 29 asks for what identifies the person: the source's customer key (a desk answering a
            # person's request finds its provisions by it).
            "subject_key": self.subject_key,
            "source": self.source,
            "items": list(self.delivery.items),
            "fields": list(self.delivery.fields),
            "purposes": list(self.delivery.purposes),
            **({"country": self.channel.country} if self.channel.country is not None else {}),
            "provided_at": self.provided_at.isoformat(),
            "policy_version": self.policy_version,
            "input": dict(self.input_ref),
        }


def provision_messages(run: Run, decided: Decided, channel: Channel, delivery: Delivery) -> list[OutMessage]:
    """What a standing channel's delivery of a decided input leaves behind, in the input's
    transaction: its provision record and its supervision log entry, where its basis needs them."""
    source = decided.source or ""
    subject = decided.subject or ""
    message = decided.message
    provision = Provision(
        channel,
        delivery,
        subject=subject,
        subject_key=f"{source}:{decided.key}",
        source=source,
        policy_version=decided.decision.policy_version if decided.decision is not None else None,
        provided_at=decided.at,
        input_ref={"topic": message.topic, "partition": message.partition, "offset": message.offset},
    )
    out = []
    entry = provision.record()
    if entry is not None:
        out.append(OutMessage(run.topology.provision_records, subject.encode(), orjson.dumps(entry), []))
    supervised = provision.supervision()
    if supervised is not None:
        out.append(OutMessage(run.topology.supervision, channel.id.encode(), orjson.dumps(supervised), []))
    return out
