"""What one shared record adds to the statistics tables: its window and cells in each, read from
the closed-list labels alone (``contribution``), the same made fast for the hot path
(``Contributor``), and the message the pipeline writes it as (``Contributions``). Pure."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.messages import Decided, OutMessage
from streams.policy.model import Policy, StatsTable
from streams.stats.core.tables import OTHER, age_band_of, age_labels, features_of, prefecture_of, table_cells
from streams.stats.core.windows import window_of, window_start
from streams.stats.core.wire import encode


def contribution(
    record: Mapping[str, Any], policy: Policy, *, purposes: Iterable[str], at: dt.datetime
) -> dict[str, Any] | None:
    """What one shared record adds to the statistics tables: per table, its window and cells (no
    value but the closed-list labels). None when the policy has no table or it counts nowhere."""
    shared_for = tuple(purposes)
    tables: dict[str, Any] = {}
    features = features_of(record, policy.statistics)
    starts = {kind: window_of(kind, at)[0] for kind in {t.window for t in policy.statistics.tables}}
    for table in policy.statistics.tables:
        start = starts[table.window]
        cells = table_cells(features, table, policy, purposes=shared_for, on=start)
        if cells:
            tables[table.id] = {"window": start.isoformat(), "cells": sorted(list(c) for c in cells)}
    if not tables:
        return None
    return {"at_ms": int(at.timestamp() * 1000), "policy_version": policy.notice.version, "tables": tables}


_EPOCH = dt.date(1970, 1, 1)
_JST_MS = 9 * 3_600_000
_DAY_MS = 86_400_000
_NO_PAIRS = frozenset({(OTHER, OTHER)})
_MIN_DAYS = (dt.date.min - _EPOCH).days
_MAX_DAYS = (dt.date.max - _EPOCH).days


@dataclass(frozen=True)
class _Layout:
    """One table as the contributor reads it: its dimensions, and which ones a record may have
    several values of (then its cells are every combination)."""

    table: StatsTable
    pairs: bool  # service or plan among the dimensions
    purpose: bool
    age: bool

    @property
    def several(self) -> bool:
        """A dimension a record may have several values of (service, plan, purpose) is among them."""
        return self.pairs or self.purpose


class Contributor:
    """``contribution`` made once for one policy version (the hot path: every shared record): the
    tables' layouts, closed lists and age bands read once, a window's first day worked out once per
    day. What it returns equals ``contribution``'s for the same record (tests/stats/test_contributor.py
    checks it over random records, purposes, times and table layouts); the event time is taken in
    milliseconds, exactly.

    A record's cells depend only on a few labels (its prefecture, gender, payment status, services
    and plans, age band per window), its purposes and the day, so the tables of each combination are
    made once and kept (``MAX_KEPT`` at most): the returned ``tables`` are shared between calls, and
    read only."""

    MAX_KEPT = 65_536

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        stats = policy.statistics
        self._stats = stats
        self._version = policy.notice.version
        self._layouts = tuple(
            _Layout(
                t,
                pairs="service" in t.dimensions or "plan" in t.dimensions,
                purpose="purpose" in t.dimensions,
                age="age_band" in t.dimensions,
            )
            for t in stats.tables
        )
        self._kinds = tuple({t.window for t in stats.tables})
        self._aged_kinds = tuple({layout.table.window for layout in self._layouts if layout.age})
        self._purpose_ids = frozenset(policy.purpose_ids)
        self._labels = age_labels(stats)
        values = stats.values
        self._genders = frozenset(values.get("gender", ()))
        self._payments = frozenset(values.get("payment_status", ()))
        self._services = frozenset(values.get("service", ()))
        self._plans = frozenset(values.get("plan", ()))
        self._days: dict[int, _Day] = {}
        self._kept: dict[tuple[Any, ...], dict[str, Any]] = {}

    def __call__(self, record: Mapping[str, Any], *, purposes: Iterable[str], at_ms: int) -> dict[str, Any] | None:
        if not self._layouts:
            return None
        day = self._day((at_ms + _JST_MS) // _DAY_MS)  # Japan's day (no summer time)
        labels = self._read(record)
        born = record.get("birth_date")
        bands = tuple(self._band(born, day.starts[kind][0], day.thresholds[kind]) for kind in self._aged_kinds)
        shared_for = purposes if type(purposes) is tuple else tuple(purposes)
        key = (day.number, labels, bands, shared_for)
        tables = self._kept.get(key)
        if tables is None:
            tables = self._tables(day, labels, dict(zip(self._aged_kinds, bands, strict=True)), shared_for)
            if len(self._kept) >= self.MAX_KEPT:
                self._kept.clear()
            self._kept[key] = tables
        if not tables:
            return None
        return {"at_ms": at_ms, "policy_version": self._version, "tables": tables}

    def _read(self, record: Mapping[str, Any]) -> tuple[str, str, str, frozenset[tuple[str, str]]]:
        """The labels a record's cells are made of: what ``features_of`` reads, by sets made once."""
        listed = record.get("service_usage")
        pairs: frozenset[tuple[str, str]] = _NO_PAIRS
        if isinstance(listed, list) and listed:
            services, plans = self._services, self._plans
            pairs = (
                frozenset(
                    (
                        service if isinstance(service := usage.get("service"), str) and service in services else OTHER,
                        plan if isinstance(plan := usage.get("plan"), str) and plan in plans else OTHER,
                    )
                    for usage in listed
                    if isinstance(usage, Mapping)
                )
                or _NO_PAIRS
            )
        gender = record.get("gender")
        payment = record.get("payment_status")
        status = payment.get("status") if isinstance(payment, Mapping) else None
        return (
            prefecture_of(record.get("address")),
            gender if isinstance(gender, str) and gender in self._genders else OTHER,
            status if isinstance(status, str) and status in self._payments else OTHER,
            pairs,
        )

    def _band(self, born: Any, on: dt.date, thresholds: tuple[int, ...] | None) -> str:
        """``age_band_of``, for a birth date in epoch days (Avro's date) by comparing days alone."""
        if type(born) is not int or thresholds is None or not _MIN_DAYS <= born <= _MAX_DAYS:
            return age_band_of(born, on, self._stats)
        if born > thresholds[0]:  # born after the window's first day
            return OTHER
        for index, latest in enumerate(thresholds[1:]):
            if born > latest:  # younger than the band's upper edge
                return self._labels[index]
        return self._labels[len(thresholds) - 1]

    def _tables(
        self,
        day: _Day,
        labels: tuple[str, str, str, frozenset[tuple[str, str]]],
        bands: dict[str, str],
        purposes: tuple[str, ...],
    ) -> dict[str, Any]:
        prefecture, gender, payment, pairs = labels
        single = {"prefecture": prefecture, "gender": gender, "payment_status": payment}
        shared_for: list[str] | None = None
        sorted_pairs: list[tuple[str, str]] | None = None
        tables: dict[str, Any] = {}
        for layout in self._layouts:
            start_iso = day.starts[layout.table.window][1]
            labelled = {**single, "age_band": bands[layout.table.window]} if layout.age else single
            dimensions = layout.table.dimensions
            if not layout.several:  # one value per dimension: one cell
                tables[layout.table.id] = {"window": start_iso, "cells": [[labelled[name] for name in dimensions]]}
                continue
            if shared_for is None:
                shared_for = sorted(self._purpose_ids.intersection(purposes))
            if layout.purpose and not shared_for:
                continue  # shared for no purpose: nothing to count
            if sorted_pairs is None:
                sorted_pairs = sorted(pairs)
            cells = set()
            for service, plan in sorted_pairs if layout.pairs else ((OTHER, OTHER),):
                for purpose in shared_for if layout.purpose else (OTHER,):
                    several = {"service": service, "plan": plan, "purpose": purpose}
                    cells.add(tuple(several[name] if name in several else labelled[name] for name in dimensions))
            tables[layout.table.id] = {"window": start_iso, "cells": sorted(list(c) for c in cells)}
        return tables

    def _day(self, number: int) -> _Day:
        day = self._days.get(number)
        if day is None:
            date = _EPOCH + dt.timedelta(days=number)
            firsts = {kind: window_start(kind, date) for kind in self._kinds}
            day = _Day(
                number,
                {kind: (first, first.isoformat()) for kind, first in firsts.items()},
                {kind: _age_thresholds(firsts[kind], self._stats.age_bands) for kind in self._aged_kinds},
            )
            if len(self._days) > 64:  # event times cluster around now: a few days at most
                self._days.clear()
            self._days[number] = day
        return day


@dataclass(frozen=True)
class _Day:
    """One of Japan's days as the contributor reads it: each window's first day (and its ISO form)
    and, for the windows an age band is counted in, the birth days that bound each band."""

    number: int  # days since 1970-01-01
    starts: Mapping[str, tuple[dt.date, str]]
    thresholds: Mapping[str, tuple[int, ...] | None]


def _age_thresholds(on: dt.date, edges: Sequence[int]) -> tuple[int, ...] | None:
    """For a window starting ``on``: ``on`` itself, then for each band edge the last birth day (in
    epoch days) of someone that old on ``on`` (their birthday in the year ``edge`` years before, or
    28 February for someone born on 29 February's date in a common year). Then ``age >= edge``
    exactly when the birth day is not later, as ``age_band_of`` counts ages. None when an edge reaches
    before year 1 (the slow path then says what it says)."""
    latest = [(on - _EPOCH).days]
    for edge in edges:
        year = on.year - edge
        if year < dt.MINYEAR:
            return None
        day = on.day if not (on.month == 2 and on.day == 29 and not calendar.isleap(year)) else 28
        latest.append((dt.date(year, on.month, day) - _EPOCH).days)
    return tuple(latest)


class Contributions:
    """A shared record's cells in each statistics table (the statistics worker counts them), with its
    subject's pseudonym, as the message the pipeline writes to ``topic`` in the transaction that
    shares the record: a withheld record never counts. The batch loop packs a transaction's
    contributions into one message (``streams.stats.core.wire.pack``).

    The event time is the record's ``updated_at``, which its producer sets. The engine shares only
    records timed from the notice's effective date to a few minutes ahead of now (beyond:
    ``future_timestamp``); within that skew a record counts now, so that a producer's clock ahead
    cannot close the open windows early for everyone."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._contributors: dict[str, Contributor] = {}  # per policy version

    def message(self, policy: Policy, decided: Decided, record: Mapping[str, Any]) -> OutMessage | None:
        """The contribution of a record ``decided`` shared under ``policy``; None when the policy
        counts it in no table."""
        if not policy.statistics.tables or decided.decision is None:
            return None
        updated = record.get("updated_at")
        now_ms = int(decided.at.timestamp() * 1000)
        at_ms = min(updated, now_ms) if type(updated) is int else now_ms
        contributor = self._contributors.get(policy.version)
        if contributor is None:
            contributor = self._contributors[policy.version] = Contributor(policy)
        found = contributor(record, purposes=decided.decision.purposes, at_ms=at_ms)
        if found is None:
            return None
        subject = decided.subject or ""
        return OutMessage(self.topic, subject.encode(), encode(subject, found), [])
