"""The tumbling windows the statistics tables are counted in, in Japan's calendar. Pure."""

from __future__ import annotations

import datetime as dt

from streams.policy.calendar import JST


def window_of(kind: str, at: dt.datetime) -> tuple[dt.date, dt.date]:
    """The tumbling window holding ``at``: its first day and the day after its last, in Japan's
    calendar (a week starts on Monday)."""
    if at.tzinfo is None:
        raise ValueError("event times must carry a UTC offset")
    start = window_start(kind, at.astimezone(JST).date())
    return start, start + dt.timedelta(days=1 if kind == "daily" else 7)


def window_start(kind: str, day: dt.date) -> dt.date:
    """The first day of the ``kind`` window holding Japan's ``day``."""
    if kind == "daily":
        return day
    if kind == "weekly":
        return day - dt.timedelta(days=day.weekday())
    raise ValueError(f"unknown window {kind}")


def window_closes_at(end: dt.date, grace: dt.timedelta) -> dt.datetime:
    """When a window ending (exclusive) on ``end`` is first published: midnight in Japan, plus grace."""
    return dt.datetime.combine(end, dt.time(), JST) + grace
