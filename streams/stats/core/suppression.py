"""Disclosure control of a statistics table (統計加工). Pure.

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
docs/statistics.md has the argument; tests/stats/test_suppression.py checks it against a linear
programme that solves for every suppressed cell.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from streams.stats.core.publication import Publication
from streams.stats.core.tables import Cell


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
