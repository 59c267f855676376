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
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

JST = dt.timezone(dt.timedelta(hours=9), "JST")
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
