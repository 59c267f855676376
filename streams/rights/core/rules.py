"""Data subject rights (APPI Art. 35) and retention (Art. 22), as values: no Kafka, no clock.

A rights request names one subject (its customer id at one source company). The latest request per
subject wins: ``stop`` and ``erase`` withhold every later record of the subject, ``resume`` lifts
both. ``erase`` also asks for tombstones in every delivery topic the subject reached and an erasure
notice to each recipient; that is the adapters' job, from the values here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.policy.model import AwareDatetime, CompanyId, Policy, retention_days
from streams.policy.pseudonym import subject_key


class RightsAction(StrEnum):
    STOP = "stop"  # stop of use (利用停止)
    ERASE = "erase"  # erasure (消去): stop, plus tombstones and notices to recipients
    RESUME = "resume"  # the subject withdrew the request


class FiledBy(StrEnum):
    """Who may file a request (APPI Art. 37(3), Enforcement Order Art. 13)."""

    SUBJECT = "subject"  # the person
    LEGAL_REPRESENTATIVE = "legal_representative"  # 法定代理人: a minor's or an adult ward's
    AUTHORISED_AGENT = "authorised_agent"  # 任意代理人: an agent the person appointed


class Requester(BaseModel):
    """Who filed a request and how the desk verified it: the person's identity, and a representative's
    or agent's authority. A minor's request is filed by a legal representative."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filed_by: FiledBy = Field(FiledBy.SUBJECT, description="The person, a legal representative or an authorised agent.")
    identity_verified_by: str = Field(
        "",
        max_length=200,
        description="How the requester's identity was verified (e.g. 運転免許証); empty only on requests "
        "filed before this was recorded.",
    )
    authority: str = Field(
        "", max_length=200, description="A representative's or agent's proof of authority (e.g. 戸籍謄本, 委任状)."
    )
    subject_is_minor: bool = Field(False, description="The person is a minor: a legal representative files.")

    @model_validator(mode="after")
    def _may_file(self) -> Requester:
        if self.subject_is_minor and self.filed_by is not FiledBy.LEGAL_REPRESENTATIVE:
            raise ValueError("a minor's request is filed by a legal representative")
        if self.filed_by is not FiledBy.SUBJECT and not self.authority:
            raise ValueError("a representative's or agent's request names its proof of authority")
        return self

    def describe(self) -> str:
        """One line for reports: who asked, how it was verified (no personal data)."""
        who = self.filed_by.value.replace("_", " ") + (" of a minor" if self.subject_is_minor else "")
        verified = self.identity_verified_by or "not recorded"
        authority = f"; authority: {self.authority}" if self.authority else ""
        return f"requested by: {who}; identity verified by: {verified}{authority}"


class RightsRequest(BaseModel):
    """One request of a data subject, as kept (compacted, per subject) in the rights topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str = Field(min_length=1, max_length=64, description="Unique id; erasure notices carry it.")
    action: RightsAction = Field(description="stop, erase or resume.")
    customer_id: str = Field(min_length=1, max_length=64, description="The subject's customer id at the source.")
    source: CompanyId = Field(description="The company whose customer the subject is.")
    requested_at: AwareDatetime = Field(description="When the subject made the request.")
    requester: Requester = Field(default_factory=Requester, description="Who filed it and how it was verified.")

    @property
    def key(self) -> str:
        return subject_key(self.source, self.customer_id)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class InvalidRightsRequest(ValueError):
    """A rights-topic value that is not a request; the message names the field, never a value."""


def parse_request(value: bytes) -> RightsRequest:
    try:
        return RightsRequest.model_validate_json(value)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "<value>" for e in exc.errors()})
        raise InvalidRightsRequest(f"not a rights request (bad or missing: {', '.join(fields)})") from exc


@dataclass
class RightsState:
    """The current request per subject key. ``is_stopped`` is the processor's hook."""

    requests: dict[str, RightsRequest] = field(default_factory=dict)

    def apply(self, key: str, request: RightsRequest | None) -> None:
        """The latest value of ``key`` in the rights topic; None is a tombstone (forget the subject)."""
        if request is None or request.action is RightsAction.RESUME:
            self.requests.pop(key, None)
        else:
            self.requests[key] = request

    def is_stopped(self, source: str, customer_id: str) -> bool:
        return subject_key(source, customer_id) in self.requests

    def __len__(self) -> int:
        return len(self.requests)


def erasure_notice(request: RightsRequest, recipient: str, *, issued_at: dt.datetime) -> bytes:
    """What a recipient is told: erase your copies of this subject. No personal data but the key."""
    return json.dumps(
        {
            "type": "erasure",
            "request_id": request.request_id,
            "recipient": recipient,
            "subject_key": request.key,
            "source": request.source,
            "requested_at": request.requested_at.isoformat(),
            "issued_at": issued_at.isoformat(),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def retention_of(policy: Policy, items: Iterable[str]) -> dt.timedelta | None:
    """How long a delivery holding ``items`` may be kept: the shortest retention among them.

    A Kafka message cannot lose some of its fields, so the whole delivery goes when its first item
    expires: erasing early is lawful, keeping too long is not. Items the policy does not name (an
    older version's) get the policy's shortest retention.
    """
    by_id = {i.id: retention_days(i.retention) for i in policy.items}
    days = [by_id.get(i, min(by_id.values())) for i in items]
    return dt.timedelta(days=min(days)) if days else None


def expired(policy: Policy, items: Iterable[str], delivered_at: dt.datetime, as_of: dt.datetime) -> bool:
    keep = retention_of(policy, items)
    return keep is not None and delivered_at + keep <= as_of


def expiry_notice(subject: str, recipient: str, *, issued_at: dt.datetime, expired_at: dt.datetime) -> bytes:
    """Told to a recipient when a delivery passed its retention: erase your copies too."""
    return json.dumps(
        {
            "type": "retention_expired",
            "recipient": recipient,
            "subject_key": subject,
            "expired_at": expired_at.isoformat(),
            "issued_at": issued_at.isoformat(),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
