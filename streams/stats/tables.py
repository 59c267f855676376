"""Statistics from shared records (統計加工) that cannot be traced back to a customer. Pure.

A table counts distinct subjects per cell of its dimensions in one window. Before it is published:

- **Primary suppression**: a cell with fewer than ``k`` subjects is not published. Neither is an
  empty cell: a published cell always counts ``k`` or more.
- **Margins**: the total, and for a table of two or three dimensions the margins of each dimension
  (the count per value). A dimension's margins are published only if none of them is below ``k``
  but above 0; a value with no subject is left out (it discloses nobody).
- **Complementary suppression**: an attacker knows the published cells, margins and total, that
  counts are whole and not negative. For every suppressed cell with 1 to ``k - 1`` subjects, the
  publication keeps a *move*: a change of the suppressed cells by whole numbers that changes that
  cell by one, keeps every published margin and the total, and keeps every count at 0 or more. Two
  tables differing by the move publish the same thing, so the cell's count cannot be recovered
  exactly. Moves are a pair of cells differing only in dimensions whose margins are not published,
  or the four corners of a rectangle in two dimensions. Where no move exists, the cheapest one is
  made by suppressing more cells (fewest subjects hidden), else a dimension's margins are withheld.

An empty suppressed cell may be deducible as empty (e.g. every subject of a margin is in published
cells): that discloses no one, and protecting empty cells too would suppress most tables.
docs/statistics.md has the argument; tests/stats/test_tables.py checks it against a linear
programme that solves for every suppressed cell.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.policy.calendar import JST
from streams.policy.model import CATEGORICAL, Policy, Statistics, StatsTable

OTHER = "other"  # a value not in the closed list, or none at all
PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)  # fmt: skip
Cell = tuple[str, ...]


def age_labels(stats: Statistics) -> tuple[str, ...]:
    return _age_labels(stats.age_bands)


@functools.cache
def _age_labels(starts: tuple[int, ...]) -> tuple[str, ...]:
    edges = (0, *starts)
    bands = [f"{low}-{high - 1}" for low, high in itertools.pairwise(edges)]
    return (*bands, f"{edges[-1]}+", OTHER)


def domain(name: str, policy: Policy) -> tuple[str, ...]:
    """Every value a dimension can take: a closed list, known to anyone reading the table."""
    stats = policy.statistics
    if name == "prefecture":
        return (*PREFECTURES, OTHER)
    if name == "age_band":
        return age_labels(stats)
    if name == "purpose":
        return tuple(p.id for p in policy.purposes)
    if name in CATEGORICAL:
        return (*stats.values[name], OTHER)
    raise ValueError(f"unknown dimension {name}")


_BY_LENGTH = {n: frozenset(p for p in PREFECTURES if len(p) == n) for n in {len(p) for p in PREFECTURES}}


def _prefecture(address: Any) -> str:
    """The prefecture an address starts with (3 or 4 characters; none is a prefix of another)."""
    if isinstance(address, str):
        for length, names in _BY_LENGTH.items():
            if address[:length] in names:
                return address[:length]
    return OTHER


def _birth_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return dt.date(1970, 1, 1) + dt.timedelta(days=value)  # Avro's date: days since 1970-01-01
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _age_band(value: Any, on: dt.date, stats: Statistics) -> str:
    born = _birth_date(value)
    if born is None or born > on:
        return OTHER
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    labels = age_labels(stats)
    for index, edge in enumerate(stats.age_bands):
        if age < edge:
            return labels[index]
    return labels[len(stats.age_bands)]


def _listed(value: Any, allowed: Sequence[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


@dataclass(frozen=True)
class _Features:
    """What the dimensions read from one record, once for every table."""

    single: Mapping[str, str]  # prefecture, gender, payment_status
    birth_date: Any
    pairs: frozenset[tuple[str, str]]  # (service, plan) per service used


def _features(record: Mapping[str, Any], stats: Statistics) -> _Features:
    values = stats.values
    listed = record.get("service_usage")
    usages: list[Any] = listed if isinstance(listed, list) else []
    services, plans = values.get("service", ()), values.get("plan", ())
    pairs = frozenset(
        (_listed(u.get("service"), services), _listed(u.get("plan"), plans)) for u in usages if isinstance(u, Mapping)
    ) or frozenset({(OTHER, OTHER)})
    payment = record.get("payment_status")
    single = {
        "prefecture": _prefecture(record.get("address")),
        "gender": _listed(record.get("gender"), values.get("gender", ())),
        "payment_status": _listed(
            payment.get("status") if isinstance(payment, Mapping) else None, values.get("payment_status", ())
        ),
    }
    return _Features(single, record.get("birth_date"), pairs)


def _cells(
    features: _Features, table: StatsTable, policy: Policy, *, purposes: Iterable[str], on: dt.date
) -> frozenset[Cell]:
    single = dict(features.single)
    if "age_band" in table.dimensions:
        single["age_band"] = _age_band(features.birth_date, on, policy.statistics)
    multiple = {"service", "plan", "purpose"}.intersection(table.dimensions)
    if not multiple:  # one value per dimension: one cell
        return frozenset({tuple(single[name] for name in table.dimensions)})
    pairs = features.pairs
    shared_for = sorted(set(purposes).intersection(policy.purpose_ids))
    choices: list[list[dict[str, str]]] = []
    if "service" in table.dimensions or "plan" in table.dimensions:
        choices.append([{"service": s, "plan": p} for s, p in sorted(pairs)])
    if "purpose" in table.dimensions:
        if not shared_for:
            return frozenset()  # shared for no purpose: nothing to count
        choices.append([{"purpose": p} for p in shared_for])
    cells = set()
    for combination in itertools.product(*choices):
        found = dict(single)
        for part in combination:
            found.update(part)
        cells.add(tuple(found[name] for name in table.dimensions))
    return frozenset(cells)


def count_cells(cells_by_subject: Mapping[str, Iterable[Cell]]) -> Counter[Cell]:
    """Distinct subjects per cell: a subject counts once in each cell it was in during the window."""
    counts: Counter[Cell] = Counter()
    for cells in cells_by_subject.values():
        counts.update(set(cells))
    return counts


@dataclass(frozen=True)
class Publication:
    """What is published of one table in one window. Every cell not in ``cells`` is suppressed
    (fewer than ``k`` subjects, empty, or hidden to protect another)."""

    table: str
    dimensions: tuple[str, ...]
    k: int
    cells: Mapping[Cell, int]
    margins: Mapping[str, Mapping[str, int]]  # dimension → value → subjects (values with 0 left out)
    total: int | None
    sensitive: int  # cells with 1 to k-1 subjects, all suppressed
    complementary: int  # cells with k or more subjects suppressed to protect a sensitive one
    withheld_margins: tuple[str, ...]  # dimensions whose margins were withheld to protect a cell
    revision: int = 0  # 0: the first publication of the window; then one more per revision


class _Table:
    """The counts as an array over the full domain, with the suppression state."""

    def __init__(self, counts: Mapping[Cell, int], domains: Sequence[Sequence[str]], k: int) -> None:
        self.domains = [tuple(d) for d in domains]
        self.index = [{v: i for i, v in enumerate(d)} for d in self.domains]
        self.n = self.array(counts)
        # What a move may take from a cell: its subjects; in a revision, only those added since the
        # last publication (an attacker knows a count never shrinks between revisions).
        self.room = self.n
        self.k = k
        self.suppressed = self.n < k
        self.dims = len(self.domains)
        self.margin_published = [self.dims >= 2 and self._margins_safe(i) for i in range(self.dims)]
        self.total_published = int(self.n.sum()) >= k

    def array(self, counts: Mapping[Cell, int]) -> np.ndarray:
        grid = np.zeros([len(d) for d in self.domains], dtype=np.int64)
        for cell, count in counts.items():
            if count:
                grid[tuple(self.index[i][v] for i, v in enumerate(cell))] += count
        return grid

    def cells_of(self, mask: np.ndarray) -> list[tuple[int, ...]]:
        return [tuple(int(i) for i in c) for c in np.argwhere(mask)]

    def margin(self, dim: int) -> np.ndarray:
        other = tuple(i for i in range(self.dims) if i != dim)
        return self.n.sum(axis=other) if other else self.n

    def _margins_safe(self, dim: int) -> bool:
        margins = self.margin(dim)
        return not bool(((margins > 0) & (margins < self.k)).any())

    def protected(self, cell: tuple[int, ...]) -> bool:
        return self._pair_partner_exists(cell) or self._rectangle_exists(cell)

    def _pair_partner_exists(self, cell: tuple[int, ...]) -> bool:
        """Another suppressed cell differing from ``cell`` only in dimensions whose margins are not
        published: moving one subject from ``cell`` to it keeps every published equation."""
        free = [i for i in range(self.dims) if not self.margin_published[i]]
        if not free:
            return False
        if len(free) == self.dims and not self.total_published:
            return True  # no published equation holds this cell at all
        view = self.suppressed[tuple(slice(None) if i in free else cell[i] for i in range(self.dims))]
        return int(view.sum()) >= 2  # the cell itself and another

    def _rectangle_exists(self, cell: tuple[int, ...]) -> bool:
        for i, j in itertools.combinations(range(self.dims), 2):
            s2, n2, a, b = self._plane(cell, i, j)
            rows = s2[:, b].copy()
            rows[a] = False
            cols = s2[a, :].copy()
            cols[b] = False
            if not rows.any() or not cols.any():
                continue
            opposite = s2[np.ix_(rows, cols)]
            # Take one subject from this cell and the opposite corner, give one to the other two.
            if (opposite & (n2[np.ix_(rows, cols)] >= 1)).any():
                return True
            # Or give one to this cell and the opposite corner, taking from the other two.
            give_rows = rows & (n2[:, b] >= 1)
            give_cols = cols & (n2[a, :] >= 1)
            if give_rows.any() and give_cols.any() and s2[np.ix_(give_rows, give_cols)].any():
                return True
        return False

    def _plane(self, cell: tuple[int, ...], i: int, j: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        where = tuple(slice(None) if d in (i, j) else cell[d] for d in range(self.dims))
        return self.suppressed[where], self.room[where], cell[i], cell[j]

    def cheapest_cover(self, cell: tuple[int, ...]) -> list[tuple[int, ...]] | None:
        """The published cells whose suppression gives ``cell`` a move, hiding the fewest subjects."""
        best: tuple[int, int, list[tuple[int, ...]]] | None = None

        def consider(extra: list[tuple[int, ...]]) -> None:
            nonlocal best
            cost = (int(sum(self.n[c] for c in extra)), len(extra))
            if best is None or cost < best[:2]:
                best = (*cost, extra)

        for i in range(self.dims):
            if self.margin_published[i]:
                continue
            for value in range(len(self.domains[i])):
                if value != cell[i]:
                    partner = _replace(cell, {i: value})
                    consider([] if self.suppressed[partner] else [partner])
        for i, j in itertools.combinations(range(self.dims), 2):
            for a2, b2 in itertools.product(range(len(self.domains[i])), range(len(self.domains[j]))):
                if a2 == cell[i] or b2 == cell[j]:
                    continue
                opposite = _replace(cell, {i: a2, j: b2})
                side_a = _replace(cell, {j: b2})
                side_b = _replace(cell, {i: a2})
                if self.room[opposite] < 1 and (self.room[side_a] < 1 or self.room[side_b] < 1):
                    continue  # no direction of the move keeps every count at 0 or more
                consider([c for c in (opposite, side_a, side_b) if not self.suppressed[c]])
        return None if best is None else best[2]

    def withhold_margins_for(self, cell: tuple[int, ...]) -> str | None:
        """Withholds the margins of the largest published dimension of ``cell``: a pair move along
        it then needs only another cell of the same line. Returns the dimension's position."""
        published = [i for i in range(self.dims) if self.margin_published[i]]
        if published:
            dim = max(published, key=lambda i: (len(self.domains[i]), -i))
            self.margin_published[dim] = False
            return str(dim)
        if self.total_published:
            self.total_published = False
            return "total"
        return None


def _replace(cell: tuple[int, ...], changes: Mapping[int, int]) -> tuple[int, ...]:
    return tuple(changes.get(d, v) for d, v in enumerate(cell))


def protect(
    table: str, dimensions: Sequence[str], domains: Sequence[Sequence[str]], counts: Mapping[Cell, int], k: int
) -> Publication:
    """The first publication of ``counts`` (distinct subjects per cell) with primary and
    complementary suppression. Deterministic: the same counts give the same publication."""
    grid = _Table(counts, domains, k)
    return _publish(table, dimensions, grid, grid.cells_of((grid.n >= 1) & (grid.n < k)))


def revise(
    previous: Publication,
    domains: Sequence[Sequence[str]],
    published_counts: Mapping[Cell, int],
    counts: Mapping[Cell, int],
) -> Publication:
    """A revision of a window already published from ``published_counts``, now that late records
    made the counts ``counts`` (never smaller, cell by cell). Suppression holds across revisions:

    - a cell suppressed before stays suppressed, even once it reaches ``k``: the moves that
      protected its earlier count would change its new one, so publishing it could expose both;
    - margins and the total are published only if they were before (and are still safe);
    - a cell that had no subject before and now has 1 to ``k - 1`` gets a move of its own, which may
      only take from cells what the late records added: the earlier publication fixes the rest.

    A cell small in an earlier publication keeps that publication's move: applied to this revision
    too, it changes both counts alike, so neither can be recovered, alone or by comparison."""
    grid = _Table(counts, domains, previous.k)
    before = grid.array(published_counts)
    if bool((grid.n < before).any()):
        raise ValueError("a revision's counts cannot be smaller than the published ones")
    grid.room = grid.n - before
    grid.suppressed = np.ones_like(grid.suppressed)
    for cell in previous.cells:
        grid.suppressed[tuple(grid.index[i][v] for i, v in enumerate(cell))] = False
    grid.suppressed |= grid.n < previous.k
    published_dims = set(previous.margins)
    grid.margin_published = [
        flag and previous.dimensions[d] in published_dims for d, flag in enumerate(grid.margin_published)
    ]
    grid.total_published = grid.total_published and previous.total is not None
    fresh = grid.cells_of((grid.n >= 1) & (grid.n < previous.k) & (before == 0))
    return _publish(previous.table, previous.dimensions, grid, fresh, revision=previous.revision + 1)


def _publish(
    table: str, dimensions: Sequence[str], grid: _Table, targets: list[tuple[int, ...]], revision: int = 0
) -> Publication:
    sensitive = int(((grid.n >= 1) & (grid.n < grid.k)).sum())
    complementary = 0
    withheld: list[str] = []
    # One pass: suppressing more cells or withholding margins never undoes another cell's move.
    for cell in targets:
        while not grid.protected(cell):
            cover = grid.cheapest_cover(cell)
            if cover is not None:
                for extra in cover:
                    grid.suppressed[extra] = True
                complementary += len(cover)
                continue
            step = grid.withhold_margins_for(cell)
            if step is None:  # with no published equation left, every cell is protected
                raise AssertionError("a cell in no published equation must be protected")
            withheld.append(step)
    cells = {
        tuple(grid.domains[d][i] for d, i in enumerate(index)): int(grid.n[index])
        for index in grid.cells_of(~grid.suppressed)
    }
    margins = {
        dimensions[d]: {grid.domains[d][i]: int(m) for i, m in enumerate(grid.margin(d)) if m > 0}
        for d in range(grid.dims)
        if grid.margin_published[d]
    }
    return Publication(
        table=table,
        dimensions=tuple(dimensions),
        k=grid.k,
        cells=cells,
        margins=margins,
        total=int(grid.n.sum()) if grid.total_published else None,
        sensitive=sensitive,
        complementary=complementary,
        withheld_margins=tuple(dimensions[int(w)] if w != "total" else "total" for w in withheld),
        revision=revision,
    )


def window_of(kind: str, at: dt.datetime) -> tuple[dt.date, dt.date]:
    """The tumbling window holding ``at``: its first day and the day after its last, in Japan's
    calendar (a week starts on Monday)."""
    if at.tzinfo is None:
        raise ValueError("event times must carry a UTC offset")
    start = _window_start(kind, at.astimezone(JST).date())
    return start, start + dt.timedelta(days=1 if kind == "daily" else 7)


def _window_start(kind: str, day: dt.date) -> dt.date:
    """The first day of the ``kind`` window holding Japan's ``day``."""
    if kind == "daily":
        return day
    if kind == "weekly":
        return day - dt.timedelta(days=day.weekday())
    raise ValueError(f"unknown window {kind}")


def window_closes_at(end: dt.date, grace: dt.timedelta) -> dt.datetime:
    """When a window ending (exclusive) on ``end`` is first published: midnight in Japan, plus grace."""
    return dt.datetime.combine(end, dt.time(), JST) + grace


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


def publication_record(
    publication: Publication, *, start: dt.date, end: dt.date, policy_version: str, published_at: dt.datetime
) -> dict[str, Any]:
    """The publication in the native form of ``schemas/statistics/stats_table.v1.avsc``."""
    epoch = dt.date(1970, 1, 1)
    return {
        "table": publication.table,
        "window_from": (start - epoch).days,
        "window_to": (end - epoch).days,
        "revision": publication.revision,
        "k": publication.k,
        "policy_version": policy_version,
        "dimensions": list(publication.dimensions),
        "cells": [{"values": list(cell), "subjects": n} for cell, n in sorted(publication.cells.items())],
        "margins": [
            {"dimension": name, "value": value, "subjects": n}
            for name, margins in publication.margins.items()
            for value, n in sorted(margins.items())
        ],
        "total": publication.total,
        "suppressed_below_k": publication.sensitive,
        "suppressed_to_protect": publication.complementary,
        "withheld_margins": list(publication.withheld_margins),
        "published_at": int(published_at.timestamp() * 1000),
    }


def contribution(
    record: Mapping[str, Any], policy: Policy, *, purposes: Iterable[str], at: dt.datetime
) -> dict[str, Any] | None:
    """What one shared record adds to the statistics tables: per table, its window and cells (no
    value but the closed-list labels). None when the policy has no table or it counts nowhere."""
    shared_for = tuple(purposes)
    tables: dict[str, Any] = {}
    features = _features(record, policy.statistics)
    starts = {kind: window_of(kind, at)[0] for kind in {t.window for t in policy.statistics.tables}}
    for table in policy.statistics.tables:
        start = starts[table.window]
        cells = _cells(features, table, policy, purposes=shared_for, on=start)
        if cells:
            tables[table.id] = {"window": start.isoformat(), "cells": sorted(list(c) for c in cells)}
    if not tables:
        return None
    return {"at_ms": int(at.timestamp() * 1000), "policy_version": policy.notice.version, "tables": tables}


_EPOCH = dt.date(1970, 1, 1)
_JST_MS = 9 * 3_600_000
_DAY_MS = 86_400_000


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
        """The labels a record's cells are made of: what ``_features`` reads, by sets made once."""
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
            _prefecture(record.get("address")),
            gender if isinstance(gender, str) and gender in self._genders else OTHER,
            status if isinstance(status, str) and status in self._payments else OTHER,
            pairs,
        )

    def _band(self, born: Any, on: dt.date, thresholds: tuple[int, ...] | None) -> str:
        """``_age_band``, for a birth date in epoch days (Avro's date) by comparing days alone."""
        if type(born) is not int or thresholds is None or not _MIN_DAYS <= born <= _MAX_DAYS:
            return _age_band(born, on, self._stats)
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
            firsts = {kind: _window_start(kind, date) for kind in self._kinds}
            day = _Day(
                number,
                {kind: (first, first.isoformat()) for kind, first in firsts.items()},
                {kind: _age_thresholds(firsts[kind], self._stats.age_bands) for kind in self._aged_kinds},
            )
            if len(self._days) > 64:  # event times cluster around now: a few days at most
                self._days.clear()
            self._days[number] = day
        return day


_NO_PAIRS = frozenset({(OTHER, OTHER)})
_MIN_DAYS = (dt.date.min - _EPOCH).days
_MAX_DAYS = (dt.date.max - _EPOCH).days


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
    exactly when the birth day is not later, as ``_age_band`` counts ages. None when an edge reaches
    before year 1 (the slow path then says what it says)."""
    latest = [(on - _EPOCH).days]
    for edge in edges:
        year = on.year - edge
        if year < dt.MINYEAR:
            return None
        day = on.day if not (on.month == 2 and on.day == 29 and not calendar.isleap(year)) else 28
        latest.append((dt.date(year, on.month, day) - _EPOCH).days)
    return tuple(latest)


def publication_state(publication: Publication, counts: Mapping[Cell, int]) -> dict[str, Any]:
    """What a revision needs of an earlier publication, as JSON-ready values."""
    return {
        "table": publication.table,
        "dimensions": list(publication.dimensions),
        "k": publication.k,
        "cells": [[list(c), n] for c, n in sorted(publication.cells.items())],
        "margins": {d: dict(m) for d, m in publication.margins.items()},
        "total": publication.total,
        "sensitive": publication.sensitive,
        "complementary": publication.complementary,
        "withheld_margins": list(publication.withheld_margins),
        "revision": publication.revision,
        "counts": [[list(c), n] for c, n in sorted(counts.items())],
    }


def from_state(state: Mapping[str, Any]) -> tuple[Publication, dict[Cell, int]]:
    publication = Publication(
        table=state["table"],
        dimensions=tuple(state["dimensions"]),
        k=int(state["k"]),
        cells={tuple(c): int(n) for c, n in state["cells"]},
        margins={d: {v: int(n) for v, n in m.items()} for d, m in state["margins"].items()},
        total=state["total"],
        sensitive=int(state["sensitive"]),
        complementary=int(state["complementary"]),
        withheld_margins=tuple(state["withheld_margins"]),
        revision=int(state["revision"]),
    )
    return publication, {tuple(c): int(n) for c, n in state["counts"]}
