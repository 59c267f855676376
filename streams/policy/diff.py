"""What changed between two notice versions, and what APPI Art. 27(6) asks for each change.

Changes of the purposes or the responsible party may take effect only after they were published
(prior publication). Changes of the items or the scope of joint users are not changes a published
notice can make alone: they need the subjects' consent (or a new joint use set up from scratch).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.policy.model import Policy


class Requirement(StrEnum):
    PRIOR_PUBLICATION = "prior_publication"
    CONSENT = "consent"
    NONE = "none"


@dataclass(frozen=True)
class Change:
    area: str  # purposes | responsible_party | items | joint_users | item_purposes | foreign_provision | notice
    kind: str  # added | removed | changed
    subject: str
    requirement: Requirement
    note: str = ""

    def __str__(self) -> str:
        text = f"{self.area}: {self.kind} {self.subject} [{self.requirement}]"
        return f"{text} {self.note}" if self.note else text


@dataclass(frozen=True)
class PolicyDiff:
    old_version: str
    new_version: str
    changes: tuple[Change, ...]
    problems: tuple[str, ...]  # e.g. a purpose change whose effective date does not follow publication

    @property
    def needs_consent(self) -> bool:
        return any(c.requirement is Requirement.CONSENT for c in self.changes)


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    changes: list[Change] = []
    changes += _keyed(
        "purposes",
        {p.id: p.ja for p in old.purposes},
        {p.id: p.ja for p in new.purposes},
        Requirement.PRIOR_PUBLICATION,
    )
    changes += _keyed(
        "purposes.marketing",
        {p.id: str(p.marketing) for p in old.purposes},
        {p.id: str(p.marketing) for p in new.purposes},
        Requirement.PRIOR_PUBLICATION,
        only_changed=True,
    )
    if old.notice.responsible_party != new.notice.responsible_party:
        changes.append(
            Change("responsible_party", "changed", new.notice.responsible_party.name_ja, Requirement.PRIOR_PUBLICATION)
        )
    changes += _keyed("items", {i.id: i.ja for i in old.items}, {i.id: i.ja for i in new.items}, Requirement.CONSENT)
    changes += _keyed(
        "items.retention",
        {i.id: i.retention for i in old.items},
        {i.id: i.retention for i in new.items},
        Requirement.NONE,
        only_changed=True,
    )
    changes += _keyed(
        "joint_users",
        {u.id: u.name_ja for u in old.joint_users},
        {u.id: u.name_ja for u in new.joint_users},
        Requirement.CONSENT,
    )
    changes += _keyed(
        "joint_users.purposes",
        {u.id: str(sorted(old.declared_purposes(u.id))) for u in old.joint_users},
        {u.id: str(sorted(new.declared_purposes(u.id))) for u in new.joint_users},
        Requirement.PRIOR_PUBLICATION,
        only_changed=True,
    )
    changes += _keyed(
        "item_purposes",
        {i: str(sorted(p)) for i, p in old.purposes_of_item.items()},
        {i: str(sorted(p)) for i, p in new.purposes_of_item.items()},
        Requirement.PRIOR_PUBLICATION,
        only_changed=True,
    )
    changes += _keyed(
        "foreign_provision",
        {r.id: r.country for r in old.foreign_provision.recipients},
        {r.id: r.country for r in new.foreign_provision.recipients},
        Requirement.CONSENT,
    )
    problems = []
    if new.notice.effective_from <= old.notice.effective_from:
        problems.append("the new version does not take effect after the old one")
    publication_needed = any(c.requirement is not Requirement.NONE for c in changes)
    if publication_needed and new.notice.effective_from.date() <= new.notice.published_at:
        problems.append("changes that need prior publication take effect on or before the publication date")
    return PolicyDiff(old.version, new.version, tuple(changes), tuple(problems))


def _keyed(
    area: str, old: dict[str, str], new: dict[str, str], requirement: Requirement, *, only_changed: bool = False
) -> list[Change]:
    out: list[Change] = []
    if not only_changed:
        out += [Change(area, "removed", key, requirement) for key in old if key not in new]
        out += [Change(area, "added", key, requirement) for key in new if key not in old]
    out += [Change(area, "changed", key, requirement) for key in new if key in old and old[key] != new[key]]
    return out
