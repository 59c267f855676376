"""Leak incidents (漏えい等事案) under APPI Art. 26 and the Enforcement Rules Art. 7 and 8: whether an
incident must be reported to the Personal Information Protection Commission (PPC) and the data
subjects, the reporting deadlines, and the report's draft. Pure: values in, values out.

Triggers (施行規則第7条): an incident is reportable when any of these holds
  (i)   sensitive personal information (要配慮個人情報) is involved;
  (ii)  the data could be misused to cause financial harm (財産的被害が生じるおそれ);
  (iii) it may have been caused with a wrongful purpose (不正の目的をもって行われたおそれ);
  (iv)  more than 1,000 data subjects are involved (1,000人を超える).

Deadlines (施行規則第8条, PPC guidelines (通則編) 3-5-3-3, 3-5-3-4), counted from the day the
business became aware of it, in Japan's calendar (UTC+9), the first day not counted (民法第140条):
  preliminary report (速報): "promptly"; the guidelines read this as within about 3 to 5 days;
  final report (確報): within 30 days, or 60 days for case (iii).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from streams.audit.core.event import AuditEvent
from streams.policy.calendar import JST

SUBJECTS_THRESHOLD = 1_000  # more than this many is reportable
PRELIMINARY_TARGET_DAYS = 3
PRELIMINARY_LIMIT_DAYS = 5
FINAL_DAYS = 30
FINAL_DAYS_WRONGFUL_PURPOSE = 60
SENSITIVE_CLASS = "sensitive"


class Trigger(StrEnum):
    SENSITIVE = "sensitive"  # (i)
    FINANCIAL_HARM = "financial_harm"  # (ii)
    WRONGFUL_PURPOSE = "wrongful_purpose"  # (iii)
    OVER_1000_SUBJECTS = "over_1000_subjects"  # (iv)


@dataclass(frozen=True)
class Assessment:
    triggers: frozenset[Trigger]

    @property
    def reportable(self) -> bool:
        return bool(self.triggers)


def assess(
    *, subjects: int, classes: Iterable[str], financial_harm: bool = False, wrongful_purpose: bool = False
) -> Assessment:
    """Which triggers hold. ``classes``: the field classes involved (the governed schema's, e.g.
    ``sensitive``); ``financial_harm`` and ``wrongful_purpose`` are an operator's findings."""
    triggers = set()
    if SENSITIVE_CLASS in set(classes):
        triggers.add(Trigger.SENSITIVE)
    if financial_harm:
        triggers.add(Trigger.FINANCIAL_HARM)
    if wrongful_purpose:
        triggers.add(Trigger.WRONGFUL_PURPOSE)
    if subjects > SUBJECTS_THRESHOLD:
        triggers.add(Trigger.OVER_1000_SUBJECTS)
    return Assessment(frozenset(triggers))


@dataclass(frozen=True)
class Deadlines:
    aware_on: dt.date  # the day (JST) the business became aware
    preliminary_target: dt.date
    preliminary_limit: dt.date
    final: dt.date

    def next_after(self, today: dt.date) -> tuple[str, dt.date] | None:
        """The next deadline not yet passed on ``today`` (JST): ("preliminary" | "final", date)."""
        for name, day in (("preliminary", self.preliminary_limit), ("final", self.final)):
            if today <= day:
                return name, day
        return None


def deadlines(aware_at: dt.datetime, *, wrongful_purpose: bool) -> Deadlines:
    """Each deadline is the last day on which the report is on time."""
    if aware_at.tzinfo is None:
        raise ValueError("aware_at must carry a UTC offset")
    day = aware_at.astimezone(JST).date()
    final = FINAL_DAYS_WRONGFUL_PURPOSE if wrongful_purpose else FINAL_DAYS
    return Deadlines(
        aware_on=day,
        preliminary_target=day + dt.timedelta(days=PRELIMINARY_TARGET_DAYS),
        preliminary_limit=day + dt.timedelta(days=PRELIMINARY_LIMIT_DAYS),
        final=day + dt.timedelta(days=final),
    )


def days_left(deadline: dt.date, now: dt.datetime) -> int:
    """Whole days from today (JST) to ``deadline``; negative once it has passed."""
    return (deadline - now.astimezone(JST).date()).days


GAP = {"ja": "【要記入】", "en": "[TO BE WRITTEN]"}

# The items a report to the PPC must cover (施行規則第8条第1項各号), in order.
REPORT_HEADINGS = {
    "ja": (
        "概要",
        "漏えい等が発生し、又は発生したおそれがある個人データの項目",
        "漏えい等が発生し、又は発生したおそれがある個人データに係る本人の数",
        "原因",
        "二次被害又はそのおそれの有無及びその内容",
        "本人への対応の実施状況",
        "公表の実施状況",
        "再発防止のための措置",
        "その他参考となる事項",
    ),
    "en": (
        "Overview",
        "Items of the personal data leaked or possibly leaked",
        "Number of data subjects concerned",
        "Cause",
        "Secondary damage, or the risk of it, and its nature",
        "Response to the data subjects",
        "Publication",
        "Measures to prevent recurrence",
        "Other relevant matters",
    ),
}
TRIGGER_TEXT = {
    "ja": {
        Trigger.SENSITIVE: "要配慮個人情報が含まれる（施行規則第7条第1号）",
        Trigger.FINANCIAL_HARM: "財産的被害が生じるおそれがある（同第2号）",
        Trigger.WRONGFUL_PURPOSE: "不正の目的をもって行われたおそれがある（同第3号）",
        Trigger.OVER_1000_SUBJECTS: "本人の数が1,000人を超える（同第4号）",
    },
    "en": {
        Trigger.SENSITIVE: "sensitive personal information is involved (Rules Art. 7 (i))",
        Trigger.FINANCIAL_HARM: "financial harm may result (Art. 7 (ii))",
        Trigger.WRONGFUL_PURPOSE: "it may have been done with a wrongful purpose (Art. 7 (iii))",
        Trigger.OVER_1000_SUBJECTS: "more than 1,000 data subjects are involved (Art. 7 (iv))",
    },
}


@dataclass(frozen=True)
class IncidentFacts:
    """What the pipeline knows of an incident: no record values, only names, counts and times."""

    incident_id: str
    opened_by: str  # "leak_canary" or an operator's principal
    aware_at: dt.datetime
    summary: str  # the reason given (an operator's words, or the canary's rule), never a value
    recipients: tuple[str, ...]
    sources: tuple[str, ...]
    items: tuple[tuple[str, str, str], ...]  # (id, ja, en)
    classes: tuple[str, ...]
    subjects: int
    deliveries: int
    blocked: bool  # the canary stopped the deliveries: a risk of a leak (おそれ), nothing sent
    notices_written: int
    assessment: Assessment
    deadlines: Deadlines
    window: tuple[dt.datetime | None, dt.datetime | None] = (None, None)


def draft_report(facts: IncidentFacts, lang: str) -> str:
    """A draft of the report to the PPC: every required heading, the facts the pipeline knows filled
    in, the rest marked as a gap for a person to write."""
    if lang not in REPORT_HEADINGS:
        raise ValueError("lang must be ja or en")
    gap = GAP[lang]
    headings = REPORT_HEADINGS[lang]
    ja = lang == "ja"
    aware = facts.aware_at.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
    triggers = [TRIGGER_TEXT[lang][t] for t in sorted(facts.assessment.triggers)] or [
        "報告対象事態に該当しない（施行規則第7条）" if ja else "no reporting trigger holds (Rules Art. 7)"
    ]
    if facts.blocked:
        what = (
            f"漏えい検知（leak canary）が、{', '.join(facts.recipients)} 宛ての配信 {facts.deliveries} 件に"
            "保護対象の項目が含まれることを検知し、送信を停止した（漏えいのおそれ）。"
            if ja
            else f"The leak canary found protected fields in {facts.deliveries} deliveries to "
            f"{', '.join(facts.recipients)} and stopped them before sending (a risk of leakage)."
        )
    else:
        what = (
            f"{', '.join(facts.recipients) or gap} への配信 {facts.deliveries} 件が対象となるおそれがある。"
            if ja
            else f"{facts.deliveries} deliveries to {', '.join(facts.recipients) or gap} may be concerned."
        )
    item_names = ", ".join(f"{j if ja else e} ({i})" for i, j, e in facts.items) or gap
    sections = [
        [
            f"{'事案番号' if ja else 'Incident'}: {facts.incident_id}",
            f"{'覚知日時' if ja else 'Became aware'}: {aware}",
            f"{'端緒' if ja else 'Opened by'}: {facts.opened_by}",
            f"{'内容' if ja else 'What happened'}: {facts.summary}. {what}",
            f"{'提供元' if ja else 'Source companies'}: {', '.join(facts.sources) or gap}",
            f"{'報告対象事態' if ja else 'Reporting triggers'}: " + "; ".join(triggers),
            f"{'速報期限' if ja else 'Preliminary report due'}: {facts.deadlines.preliminary_target} – "
            f"{facts.deadlines.preliminary_limit}",
            f"{'確報期限' if ja else 'Final report due'}: {facts.deadlines.final}",
        ],
        [item_names, f"{'区分' if ja else 'Classes'}: {', '.join(facts.classes) or gap}"],
        [f"{facts.subjects:,}{'人' if ja else ' data subjects'}"],
        [gap],
        [gap],
        [
            (
                f"提供元各社の通知トピックに本人ごとの通知 {facts.notices_written} 件を書き込んだ。"
                "本人への通知は各社が行う。"
                if ja
                else f"{facts.notices_written} per-subject notices were written to the source companies' notices "
                "topics; each company tells its own customers."
            ),
            gap,
        ],
        [gap],
        [gap],
        [gap],
    ]
    title = (
        "個人情報保護委員会への報告（案）" if ja else "Report to the Personal Information Protection Commission (draft)"
    )
    lines = [f"# {title}", ""]
    for number, (heading, body) in enumerate(zip(headings, sections, strict=True), start=1):
        lines += [f"## {number}. {heading}", "", *body, ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class IncidentScope:
    """What an incident concerns, resolved from audit events: pseudonymous subjects and where each
    one's input was (so its source company can find its customer), never a record's value."""

    subjects: frozenset[str]
    recipients: tuple[str, ...]
    sources: tuple[str, ...]
    items: tuple[str, ...]
    classes: tuple[str, ...]
    deliveries: int
    blocked: bool  # the canary stopped them: nothing was sent
    inputs: tuple[tuple[str, str, str, int, int], ...]  # (subject, source, topic, partition, offset)
    reached: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # subject -> its recipients here

    def first_inputs(self) -> list[tuple[str, str, str, int, int]]:
        """One input per subject (its first): where to find the customer a notice is about."""
        seen: dict[str, tuple[str, str, str, int, int]] = {}
        for found in self.inputs:
            seen.setdefault(found[0], found)
        return list(seen.values())


def canary_exposure(events: Iterable[AuditEvent]) -> IncidentScope:
    """The deliveries the leak canary blocked (audit events with reason ``leak_canary``)."""
    hits = [e for e in events if e.reason == "leak_canary" and e.leaks]
    return _exposure(
        hits,
        recipients={leak.recipient for e in hits for leak in e.leaks},
        items=set(),
        classes={leak.cls for e in hits for leak in e.leaks},
        deliveries=sum(len({leak.recipient for leak in e.leaks}) for e in hits),  # one per recipient
        blocked=True,
        recipients_of=lambda e: {leak.recipient for leak in e.leaks},
    )


def delivery_exposure(
    events: Iterable[AuditEvent],
    *,
    recipient: str | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
    subjects: frozenset[str] | None = None,
) -> IncidentScope:
    """What was delivered (to ``recipient``, in ``[from_ms, to_ms)`` by processing time, of
    ``subjects``): e.g. a recipient's systems were breached, and its copies may have leaked."""
    chosen = []
    reached_by: dict[int, set[str]] = {}
    deliveries = 0
    recipients: set[str] = set()
    items: set[str] = set()
    for event in events:
        at = event.processed_at_ms
        if (from_ms is not None and at < from_ms) or (to_ms is not None and at >= to_ms):
            continue
        if subjects is not None and event.subject not in subjects:
            continue
        reached = {r: d for r, d in event.deliveries() if recipient in (None, r)}
        if not reached:
            continue
        chosen.append(event)
        reached_by[id(event)] = set(reached)
        deliveries += len(reached)
        recipients.update(reached)
        items.update(i for d in reached.values() for i in d.items)
    # A delivery holds identifiers and the notice's items only: never a protected class.
    return _exposure(
        chosen,
        recipients=recipients,
        items=items,
        classes={"identifier", "item"},
        deliveries=deliveries,
        blocked=False,
        recipients_of=lambda e: reached_by[id(e)],
    )


def _exposure(
    events: list[AuditEvent],
    *,
    recipients: set[str],
    items: set[str],
    classes: set[str],
    deliveries: int,
    blocked: bool,
    recipients_of: Callable[[AuditEvent], set[str]],
) -> IncidentScope:
    reached: dict[str, set[str]] = {}
    for event in events:
        if event.subject:
            reached.setdefault(event.subject, set()).update(recipients_of(event))
    inputs = sorted(
        {
            (e.subject, e.source or "", e.input.topic, e.input.partition, e.input.offset)
            for e in events
            if e.subject and e.input.topic
        }
    )
    return IncidentScope(
        subjects=frozenset(i[0] for i in inputs),
        recipients=tuple(sorted(recipients)),
        sources=tuple(sorted({i[1] for i in inputs if i[1]})),
        items=tuple(sorted(items)),
        classes=tuple(sorted(classes)),
        deliveries=deliveries,
        blocked=blocked,
        inputs=tuple(inputs),
        reached={subject: tuple(sorted(r)) for subject, r in reached.items()},
    )
