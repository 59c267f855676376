"""The statistics book: every open and published window of the policy's tables, the subjects
counted in each, and what is due for publication as event time advances. Pure."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.policy.model import Policy
from streams.stats.core.contributions import contribution
from streams.stats.core.publication import Publication
from streams.stats.core.suppression import protect, revise
from streams.stats.core.tables import Cell, domain
from streams.stats.core.windows import window_closes_at


def count_cells(cells_by_subject: Mapping[str, Iterable[Cell]]) -> Counter[Cell]:
    """Distinct subjects per cell: a subject counts once in each cell it was in during the window."""
    counts: Counter[Cell] = Counter()
    for cells in cells_by_subject.values():
        counts.update(set(cells))
    return counts


@dataclass
class WindowCounts:
    """One table's window: the cells each subject was in, and what was last published."""

    table: str
    start: dt.date
    end: dt.date
    subjects: dict[str, frozenset[Cell]]
    published: Publication | None = None
    published_counts: dict[Cell, int] | None = None
    changed_since_published: bool = False

    def counts(self) -> Counter[Cell]:
        return count_cells(self.subjects)


def contributed_cells(part: Mapping[str, Any]) -> frozenset[tuple[str, ...]]:
    """The cells of one table's part of a contribution, as the book keeps them."""
    return frozenset(tuple(str(v) for v in cell) for cell in part["cells"])


class StatsBook:
    """Every open and published window of the policy's tables. Records go in with ``add``;
    ``advance`` to an event time (the watermark) returns what must be published: the first
    publication of every window closed by then, and a revision of every closed window that late
    records changed."""

    def __init__(self, policy: Policy, *, grace: dt.timedelta = dt.timedelta(hours=1)) -> None:
        self.policy = policy
        self.grace = grace
        self.tables = {t.id: t for t in policy.statistics.tables}
        self.domains = {t.id: [domain(d, policy) for d in t.dimensions] for t in policy.statistics.tables}
        self.windows: dict[tuple[str, dt.date], WindowCounts] = {}
        self.late = 0  # records counted into a window already published
        self._next_close: dt.datetime | None = None  # the earliest close of a window not published
        self._open = 0  # windows not published
        self._revisions_due = False

    def add(self, *, subject: str, record: Mapping[str, Any], purposes: Iterable[str], at: dt.datetime) -> int:
        """Counts one shared record of ``subject`` with event time ``at`` in each table; returns in
        how many tables it counted."""
        found = contribution(record, self.policy, purposes=purposes, at=at)
        return 0 if found is None else self.add_contribution(subject, found)

    def add_contribution(self, subject: str, found: Mapping[str, Any]) -> int:
        """Counts a ``contribution`` (as the workers write it); returns in how many tables it added
        a cell. Adding the same one again changes nothing."""
        return sum(
            self.add_cells(subject, table_id, dt.date.fromisoformat(part["window"]), contributed_cells(part))
            for table_id, part in found["tables"].items()
        )

    def add_cells(self, subject: str, table_id: str, start: dt.date, cells: frozenset[tuple[str, ...]]) -> bool:
        """Counts ``subject`` in the cells of one table's window starting ``start``; whether it
        added any (a table the policy no longer has, or of another shape, counts nothing)."""
        table = self.tables.get(table_id)
        if table is None:
            return False  # a table the policy no longer has
        if any(len(cell) != len(table.dimensions) for cell in cells):
            return False  # written under another shape of the table
        window = self.windows.get((table.id, start))
        if window is None:
            end = start + dt.timedelta(days=1 if table.window == "daily" else 7)
            window = self.windows[(table.id, start)] = WindowCounts(table.id, start, end, {})
            closes = window_closes_at(end, self.grace)
            self._next_close = closes if self._next_close is None else min(self._next_close, closes)
            self._open += 1
        before = window.subjects.get(subject, frozenset())
        if cells <= before:
            return False
        window.subjects[subject] = before | cells
        if window.published is not None:
            window.changed_since_published = True
            self._revisions_due = True
            self.late += 1
        return True

    @property
    def open_windows(self) -> int:
        """Windows counted and not yet published."""
        return self._open

    @property
    def next_close(self) -> dt.datetime | None:
        """When the earliest window not yet published closes, in event time (None: none is open)."""
        return self._next_close

    def due(self, watermark: dt.datetime) -> bool:
        """Whether ``advance(watermark)`` would publish anything (cheap: call it per record)."""
        return self._revisions_due or (self._next_close is not None and watermark >= self._next_close)

    def advance(self, watermark: dt.datetime) -> list[tuple[WindowCounts, Publication]]:
        out = []
        for key in sorted(self.windows):
            window = self.windows[key]
            if watermark < window_closes_at(window.end, self.grace):
                continue
            if window.published is not None and not window.changed_since_published:
                continue
            counts = dict(window.counts())
            table = self.tables[window.table]
            domains = self.domains[window.table]
            if window.published is None:
                publication = protect(table.id, table.dimensions, domains, counts, self.policy.statistics.k)
                self._open -= 1
            else:
                publication = revise(window.published, domains, window.published_counts or {}, counts)
            window.published, window.published_counts = publication, counts
            window.changed_since_published = False
            out.append((window, publication))
        self._revisions_due = False
        unpublished = [window_closes_at(w.end, self.grace) for w in self.windows.values() if w.published is None]
        self._next_close = min(unpublished, default=None)
        return out

    def restore(self, table: str, start: dt.date, publication: Publication, counts: Mapping[Cell, int]) -> None:
        """What was published of a window before a restart (its subjects are added first)."""
        window = self.windows.get((table, start))
        if window is None:
            return
        if window.published is None:
            self._open -= 1
        window.published, window.published_counts = publication, dict(counts)
        window.changed_since_published = dict(window.counts()) != dict(counts)
        self._revisions_due = self._revisions_due or window.changed_since_published
        if self._next_close is not None and window_closes_at(window.end, self.grace) <= self._next_close:
            # It may have been the earliest: look again (only then, so that restoring n windows is not n²).
            unpublished = [window_closes_at(w.end, self.grace) for w in self.windows.values() if w.published is None]
            self._next_close = min(unpublished, default=None)
