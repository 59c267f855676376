"""What changed between two notice versions, and what the law asks for each change.

The comparison walks the notice model generically: every field of every model, with collections of
models matched by their ``id``. Each changed path is classed by the rule of the longest matching
pattern in ``RULES``. A field that no rule names is classed as needing consent, the strictest class,
so a new field of the model cannot slip through unnoticed (a test checks that every field has a rule).

The classes (APPI; see the domain notes, not legal advice):
- consent: the items, the scope of joint users and foreign provision cannot be widened by a notice
  (Art. 27(5)(iii), Art. 28): it needs the subjects' consent or a new joint use;
- advance notice: the purposes and the responsible party may change only after the change is
  published (Art. 27(6));
- notify without delay: the responsible party's address and representative, and other published
  facts (Art. 27(6), second sentence);
- internal: the deployment's own settings (versions, dates, retention).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from streams.policy.bases import LegalBasis
from streams.policy.model import Policy


class Requirement(StrEnum):
    CONSENT = "consent"
    ADVANCE_NOTICE = "advance_notice"
    NOTIFY_WITHOUT_DELAY = "notify_without_delay"
    INTERNAL = "internal"

    @property
    def category(self) -> str:
        """The three classes the operators report: consent or advance notice, notify, internal."""
        if self in (Requirement.CONSENT, Requirement.ADVANCE_NOTICE):
            return "consent_or_advance_notice"
        return self.value


_C, _A, _N, _I = (
    Requirement.CONSENT,
    Requirement.ADVANCE_NOTICE,
    Requirement.NOTIFY_WITHOUT_DELAY,
    Requirement.INTERNAL,
)

# Patterns name model paths; ``[*]`` stands for any element id of a collection, ``{*}`` for any key.
RULES: dict[str, Requirement] = {
    "notice.id": _C,  # another notice is another joint use
    "notice.version": _I,
    "notice.published_at": _I,
    "notice.effective_from": _I,
    "notice.statistical_processing": _A,  # a use of the data, published with the purposes
    # A different name may be a different party: treated as a change of the party (advance notice).
    "notice.responsible_party.name_ja": _A,
    "notice.responsible_party.name_en": _A,
    "notice.responsible_party.role_ja": _N,
    "notice.responsible_party.address_ja": _N,
    "notice.responsible_party.representative_ja": _N,
    "notice.acquisition_methods[*]": _N,
    "notice.acquisition_methods[*].id": _I,
    "notice.acquisition_methods[*].ja": _N,
    "notice.acquisition_methods[*].en": _N,
    # The exclusion bounds the items (通信の秘密に抵触する情報は除く): loosening it widens them.
    "notice.exclusion_ja": _C,
    "notice.exclusion_en": _C,
    "items[*]": _C,
    "items[*].id": _C,
    "items[*].ja": _C,
    "items[*].en": _N,
    "items[*].retention": _I,
    "purposes[*]": _A,
    "purposes[*].id": _A,
    "purposes[*].ja": _A,
    "purposes[*].en": _N,
    "purposes[*].ordinal": _N,
    "purposes[*].marketing": _A,  # who is left out after an opt-out: a change of use
    "item_purposes.default": _A,
    "item_purposes.items": _A,
    "joint_users[*]": _C,
    "joint_users[*].id": _C,
    "joint_users[*].name_ja": _C,  # another name may be another company
    "joint_users[*].name_en": _N,
    "joint_users[*].purposes": _A,
    "foreign_provision.allowed_countries": _C,
    # The insurer's own notice. Its purposes change like the joint-use ones; widening what sensitive
    # data may serve, a new basis, or a third party's channel needs consent; an entrustee's or a
    # law's channel is internal (``_by_basis``).
    "handling.provider": _C,
    "handling.purposes[*]": _A,
    "handling.purposes[*].id": _A,
    "handling.purposes[*].ja": _A,
    "handling.purposes[*].en": _N,
    "handling.purposes[*].ordinal": _N,
    "handling.purposes[*].marketing": _A,
    "handling.sensitive_purposes": _C,
    "handling.bases": _C,  # a new way for the data to leave
    "handling.channels[*]": _C,
    "handling.channels[*].id": _C,
    "handling.channels[*].basis": _C,
    "handling.channels[*].name_ja": _C,
    "handling.channels[*].name_en": _N,
    "handling.channels[*].purposes": _C,
    "handling.channels[*].items": _C,
    "handling.channels[*].insurer_fields": _C,
    "handling.channels[*].sensitive_fields": _C,
    "handling.channels[*].task_ja": _C,
    "handling.channels[*].contract": _I,
    "handling.channels[*].consent_reference": _N,
    "handling.channels[*].country": _C,  # another country abroad: consent to provision there (Art. 28)
    "handling.consent_evidence": _C,  # which records count as consented
    "handling.provision_record_retention": _I,
    # Statistics whose cells count k or more subjects, small cells protected, are not personal
    # data (docs/statistics.md): how they are cut is the deployment's setting. Whether the data
    # may be processed into statistics at all is the notice's (notice.statistical_processing).
    "statistics.k": _I,
    "statistics.age_bands": _I,
    "statistics.values": _I,
    "statistics.tables[*]": _I,
    "statistics.tables[*].id": _I,
    "statistics.tables[*].window": _I,
    "statistics.tables[*].dimensions": _I,
    "statistics.tables[*].recipients": _I,
}


@dataclass(frozen=True)
class Change:
    path: str  # e.g. purposes[jointuse.billing].ja, foreign_provision.allowed_countries
    kind: str  # added | removed | changed
    requirement: Requirement
    pattern: str  # the rule that classed it ("" when no rule named the path: classed as consent)

    @property
    def area(self) -> str:
        return self.path.split("[", 1)[0].split("{", 1)[0].split(".", 1)[0]

    def __str__(self) -> str:
        unruled = "" if self.pattern else " (no rule names this field: treated as consent)"
        return f"{self.path}: {self.kind} [{self.requirement}]{unruled}"


@dataclass(frozen=True)
class PolicyDiff:
    old_version: str
    new_version: str
    changes: tuple[Change, ...]
    problems: tuple[str, ...]  # e.g. a change needing advance notice that takes effect on publication

    @property
    def needs_consent(self) -> bool:
        return any(c.requirement is Requirement.CONSENT for c in self.changes)

    def by_category(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.requirement.category, []).append(change)
        return grouped


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    before, after = flatten(old), flatten(new)
    changes: list[Change] = []
    whole: list[str] = []  # elements added or removed as a whole: their fields are not listed again
    for path, pattern in _union_of_keys(before, after):
        if any(path.startswith(element) and path[len(element)] in ".[{" for element in whole):
            continue
        if path in before and path in after:
            if before[path] == after[path]:
                continue
            kind = "changed"
        else:
            kind = "added" if path in after else "removed"
            if pattern.endswith("[*]"):
                whole.append(path)
        requirement, rule = classify_path(pattern)
        requirement, rule = _by_basis(path, requirement, rule, old, new)
        changes.append(Change(path, kind, requirement, rule))
    problems = []
    if new.notice.effective_from <= old.notice.effective_from:
        problems.append("the new version does not take effect after the old one")
    advance = any(c.requirement in (Requirement.ADVANCE_NOTICE, Requirement.CONSENT) for c in changes)
    if advance and new.notice.effective_from.date() <= new.notice.published_at:
        problems.append("changes that need advance notice take effect on or before the publication date")
    return PolicyDiff(old.version, new.version, tuple(changes), tuple(problems))


# A channel under these bases is not a third-party provision needing the subject's consent: an
# entrustee handles the data for the insurer (Art. 27(5)(i); the insurer supervises it, Art. 25), and
# a law needs no consent (Art. 27(1)(i)). Adding one, or what it receives, is the insurer's to decide
# within the published basis: internal. Other channels keep the rules above.
_NO_CONSENT_CHANNELS = frozenset({LegalBasis.ENTRUSTMENT, LegalBasis.LEGAL_OBLIGATION})
_CHANNEL_PATH = re.compile(r"^handling\.channels\[([^\]]+)\]")


def _by_basis(path: str, requirement: Requirement, rule: str, old: Policy, new: Policy) -> tuple[Requirement, str]:
    """A channel's change classed by its basis (the one it has in both versions, or in the one it is in)."""
    match = _CHANNEL_PATH.match(path)
    if match is None:
        return requirement, rule
    bases = {p.channels_by_id[match[1]].basis for p in (old, new) if match[1] in p.channels_by_id}
    if bases and bases <= _NO_CONSENT_CHANNELS:
        return Requirement.INTERNAL, f"{rule} (basis {', '.join(sorted(bases))})"
    return requirement, rule


def classify_path(pattern: str) -> tuple[Requirement, str]:
    """The requirement of the longest rule that names ``pattern`` or one of its parents."""
    candidate = pattern
    while candidate:
        if candidate in RULES:
            return RULES[candidate], candidate
        candidate = _parent(candidate)
    return Requirement.CONSENT, ""


def _parent(pattern: str) -> str:
    cut = max(pattern.rfind("."), pattern.rfind("["), pattern.rfind("{"))
    return pattern[:cut] if cut > 0 else ""


def _union_of_keys(
    before: Mapping[str, tuple[str, Any]], after: Mapping[str, tuple[str, Any]]
) -> list[tuple[str, str]]:
    seen = dict.fromkeys([*before, *after])
    return [(path, (before.get(path) or after[path])[0]) for path in seen]


def flatten(model: BaseModel) -> dict[str, tuple[str, Any]]:
    """Every leaf of a model: path -> (pattern, value). A collection element is also a leaf of its
    own (its presence), so adding or removing one is a change of its path."""
    out: dict[str, tuple[str, Any]] = {}
    _walk(model, "", "", out)
    return out


def _walk(value: Any, path: str, pattern: str, out: dict[str, tuple[str, Any]]) -> None:
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            inner, inner_path, inner_pattern = getattr(value, name), _join(path, name), _join(pattern, name)
            if _is_collection(info.annotation) and _model_in(info.annotation) is not None:
                for element in inner:  # matched by id, so a reordering is no change
                    element_path, element_pattern = f"{inner_path}[{element.id}]", f"{inner_pattern}[*]"
                    out[element_path] = (element_pattern, True)
                    _walk(element, element_path, element_pattern, out)
            else:
                _walk(inner, inner_path, inner_pattern, out)
        return
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _walk(inner, f"{path}{{{key}}}", f"{pattern}{{*}}", out)
        return
    out[path] = (pattern, value)


def _join(head: str, name: str) -> str:
    return f"{head}.{name}" if head else name


def model_patterns(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf pattern of a model class (for the test that every field has a rule)."""
    found: list[str] = []
    for name, info in model.model_fields.items():
        pattern = _join(prefix, name)
        nested = _model_in(info.annotation)
        if nested is None:
            found.append(pattern)
        elif _is_collection(info.annotation):
            found.append(f"{pattern}[*]")
            found.extend(model_patterns(nested, f"{pattern}[*]"))
        else:
            found.extend(model_patterns(nested, pattern))
    return found


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _is_collection(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is tuple
