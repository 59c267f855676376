"""What the engine returns: values, never exceptions, never output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Status(StrEnum):
    SHARED = "shared"  # at least one joint user receives a projection
    WITHHELD = "withheld"  # valid, but nobody may receive it (stop of use, no recipient, ...)
    INVALID = "invalid"  # not a valid record of the schema, or published on another's behalf


class Reason(StrEnum):
    """Stable reason codes, used in outputs, headers and metric labels (a bounded set)."""

    SHARED = "shared"
    NOT_AN_OBJECT = "not_an_object"
    SCHEMA_VIOLATION = "schema_violation"
    SOURCE_MISMATCH = "source_mismatch"
    FUTURE_TIMESTAMP = "future_timestamp"
    NO_POLICY_IN_FORCE = "no_policy_in_force"
    SOURCE_NOT_JOINT_USER = "source_not_joint_user"
    JOINT_USE_STOP = "joint_use_stop"
    STOP_OF_USE = "stop_of_use"
    NO_RECIPIENT = "no_recipient"
    # Provision through a channel of the insurer's notice (Engine.provide):
    NOT_PROVIDER = "not_provider"  # not the provider's own customer's record
    NO_CHANNEL = "no_channel"  # the channel (abroad: in its country) is not in every governing version
    NO_CONSENT = "no_consent"  # the basis needs consent and the record shows none


class DroppedField(NamedTuple):
    """A field removed from every delivery: its path and class, never its value. A pair, so that a
    decision's are the outcome's ``(path, class)`` pairs as they are, with no copy per input."""

    path: str
    cls: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one recipient receives (a joint user, or a channel of the insurer's notice), and for
    which purposes it may use it. ``fields``: the protected fields a channel receives by path
    (insurer-only or sensitive, as its basis and the policy allow); none for a joint user."""

    recipient: str
    purposes: tuple[str, ...]
    items: tuple[str, ...]
    record: Mapping[str, Any]
    fields: tuple[str, ...] = ()
    basis: str = "joint_use"  # the legal basis it is received under (streams.policy.bases)


@dataclass(frozen=True, slots=True)
class Decision:
    status: Status
    reason: Reason
    detail: str = ""  # for invalid: "<rule> at <path>: <what was expected>"; never a value
    key: str | None = None
    purposes: tuple[str, ...] = ()
    deliveries: Mapping[str, Delivery] = field(default_factory=dict)
    dropped: tuple[DroppedField, ...] = ()
    policy_version: str | None = None  # the version in force when the record was processed
    record_policy_version: str | None = None  # the version in force at the record's own time, when shared

    @property
    def message(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)
