"""What changes between a recorded decision (an audit event) and a new one: pure values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.audit.core.event import AuditEvent
from streams.policy.decision import Decision, Status

SAMPLES = 3


@dataclass(frozen=True, order=True)
class Change:
    kind: str  # status | recipient | purpose | item
    recipient: str  # "" for status changes
    what: str  # "shared -> withheld", a purpose id, an item id, or "" for a recipient
    direction: str  # added | removed | changed


@dataclass
class DryRunReport:
    compared: int = 0
    unchanged: int = 0
    without_audit: int = 0
    counts: dict[Change, int] = field(default_factory=dict)
    samples: dict[Change, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return self.compared - self.unchanged

    def add(self, key: str, changes: Iterable[Change]) -> None:
        self.compared += 1
        found = False
        for change in changes:
            found = True
            self.counts[change] = self.counts.get(change, 0) + 1
            keys = self.samples.setdefault(change, [])
            if len(keys) < SAMPLES:
                keys.append(key)
        if not found:
            self.unchanged += 1

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": c.kind,
                "recipient": c.recipient or None,
                "what": c.what or None,
                "direction": c.direction,
                "records": n,
                "sample_keys": self.samples[c],
            }
            for c, n in sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        ]


def _recorded(event: AuditEvent) -> tuple[str, dict[str, tuple[set[str], set[str]]]]:
    return event.status.value, {r: (set(what.purposes), set(what.items)) for r, what in event.recipients.items()}


def _decided(decision: Decision | None) -> tuple[str, dict[str, tuple[set[str], set[str]]]]:
    if decision is None or decision.status is Status.INVALID:
        return Status.INVALID.value, {}
    return decision.status.value, {r: (set(d.purposes), set(d.items)) for r, d in decision.deliveries.items()}


def changes(event: AuditEvent, decision: Decision | None) -> list[Change]:
    """Differences from the recorded decision ``event`` to the new ``decision``."""
    old_status, old = _recorded(event)
    new_status, new = _decided(decision)
    found = []
    if old_status != new_status:
        found.append(Change("status", "", f"{old_status} -> {new_status}", "changed"))
    for recipient in sorted(old.keys() | new.keys()):
        if recipient not in new:
            found.append(Change("recipient", recipient, "", "removed"))
            continue
        if recipient not in old:
            found.append(Change("recipient", recipient, "", "added"))
            continue
        (old_purposes, old_items), (new_purposes, new_items) = old[recipient], new[recipient]
        found += [Change("purpose", recipient, p, "removed") for p in sorted(old_purposes - new_purposes)]
        found += [Change("purpose", recipient, p, "added") for p in sorted(new_purposes - old_purposes)]
        found += [Change("item", recipient, i, "removed") for i in sorted(old_items - new_items)]
        found += [Change("item", recipient, i, "added") for i in sorted(new_items - old_items)]
    return found
