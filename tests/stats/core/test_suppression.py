"""Statistics with disclosure control: no published cell below k, and no suppressed cell with 1 to
k-1 subjects can be recovered exactly by an attacker who solves for it with a linear programme over
everything published (cells, margins, total; counts whole and not negative)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from streams.stats.core.publication import Publication
from streams.stats.core.suppression import protect, revise
from streams.stats.core.tables import Cell


def _domains(sizes: Sequence[int]) -> list[tuple[str, ...]]:
    return [tuple(f"d{d}v{v}" for v in range(size)) for d, size in enumerate(sizes)]


def attacker_range(publication: Publication, domains: Sequence[Sequence[str]], target: Cell) -> tuple[float, float]:
    """The least and greatest count of ``target`` consistent with everything published."""
    cells = list(itertools.product(*domains))
    unknown = [c for c in cells if c not in publication.cells]
    index = {c: i for i, c in enumerate(unknown)}
    rows: list[np.ndarray] = []
    rhs: list[float] = []

    def equation(members: list[Cell], value: int) -> None:
        row = np.zeros(len(unknown))
        rest = float(value)
        for cell in members:
            if cell in index:
                row[index[cell]] += 1
            else:
                rest -= publication.cells[cell]
        rows.append(row)
        rhs.append(rest)

    if publication.total is not None:
        equation(cells, publication.total)
    for name, margins in publication.margins.items():
        d = publication.dimensions.index(name)
        for value in domains[d]:  # a value left out of a published dimension's margins has none
            equation([c for c in cells if c[d] == value], margins.get(value, 0))
    objective = np.zeros(len(unknown))
    objective[index[target]] = 1
    bounds = [(0, None)] * len(unknown)
    a_eq = np.array(rows) if rows else None
    b_eq = np.array(rhs) if rows else None
    low = linprog(objective, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    high = linprog(-objective, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    assert low.status == 0, "the published table must be consistent"
    return low.fun, (-high.fun if high.status == 0 else float("inf"))


def _check(counts: dict[Cell, int], domains: list[tuple[str, ...]], k: int) -> Publication:
    names = [f"dim{d}" for d in range(len(domains))]
    publication = protect("t", names, domains, counts, k)
    truth = Counter({c: n for c, n in counts.items() if n})
    assert all(n >= k and n == truth[c] for c, n in publication.cells.items()), "a published cell is below k"
    assert publication.total is None or publication.total == sum(truth.values()) >= k
    for name, margins in publication.margins.items():
        d = names.index(name)
        for value, m in margins.items():
            assert m >= k and m == sum(n for c, n in truth.items() if c[d] == value)
    for cell, n in truth.items():
        if n < k:
            assert cell not in publication.cells
            low, high = attacker_range(publication, domains, cell)
            assert low - 1e-6 <= n <= high + 1e-6
            assert high - low >= 1 - 1e-6, f"cell {cell} ({n} subjects) is recoverable: [{low}, {high}]"
    return publication


counts_strategy = st.sampled_from([0, 0, 0, 1, 2, 3, 4, 7, 9, 10, 11, 15, 40])


@st.composite
def tables(draw: st.DrawFn) -> tuple[dict[Cell, int], list[tuple[str, ...]], int]:
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    domains = _domains(sizes)
    counts = {c: draw(counts_strategy) for c in itertools.product(*domains)}
    return counts, domains, draw(st.sampled_from([3, 5, 10]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_no_sensitive_cell_can_be_recovered_from_what_is_published(
    table: tuple[dict[Cell, int], list[tuple[str, ...]], int],
) -> None:
    _check(*table)


def test_the_attacker_recovers_a_cell_from_a_naive_publication() -> None:
    """The check can fail: publish every cell of at least k with all margins and the total, as a
    naive group-by would, and the attacker solves the small cell exactly."""
    domains = _domains([2, 2])
    counts = {("d0v0", "d1v0"): 0, ("d0v0", "d1v1"): 0, ("d0v1", "d1v0"): 5, ("d0v1", "d1v1"): 20}
    naive = Publication(
        table="t",
        dimensions=("dim0", "dim1"),
        k=10,
        cells={("d0v1", "d1v1"): 20},
        margins={"dim0": {"d0v1": 25}, "dim1": {"d1v0": 5, "d1v1": 20}},
        total=25,
        sensitive=1,
        complementary=0,
        withheld_margins=(),
    )
    assert attacker_range(naive, domains, ("d0v1", "d1v0")) == pytest.approx((5, 5))
    protected = _check(counts, domains, 10)
    # dim1's margins hold a 5: not published; the 20 beside the 5 is hidden too, so the 25 of its
    # row could be any split of the two.
    assert (protected.cells, protected.complementary, protected.margins) == ({}, 1, {"dim0": {"d0v1": 25}})


def test_a_lone_small_cell_gets_a_complementary_partner() -> None:
    domains = _domains([4])
    counts = {("d0v0",): 3, ("d0v1",): 12, ("d0v2",): 30, ("d0v3",): 50}
    publication = _check(counts, domains, 10)
    assert publication.total == 95 and publication.complementary == 1
    assert ("d0v1",) not in publication.cells  # the smallest publishable cell hides the small one
    assert publication.cells == {("d0v2",): 30, ("d0v3",): 50}


def test_a_two_way_table_keeps_its_margins_when_a_rectangle_protects() -> None:
    domains = _domains([3, 3])
    counts = {c: 20 for c in itertools.product(*domains)}
    counts[("d0v0", "d1v0")] = 4
    publication = _check(counts, domains, 10)
    assert set(publication.margins) == {"dim0", "dim1"} and publication.total == 164
    assert publication.complementary == 3  # the rectangle's three other corners
    assert len(publication.cells) == 5


def joint_attacker_range(
    first: Publication, second: Publication, domains: Sequence[Sequence[str]], target: Cell, in_second: bool
) -> tuple[float, float]:
    """The range of ``target``'s count in the first (or, ``in_second``, the revised) publication
    consistent with both publications and with counts that never shrink between them."""
    cells = list(itertools.product(*domains))
    unknown = [(0, c) for c in cells if c not in first.cells] + [(1, c) for c in cells if c not in second.cells]
    index = {u: i for i, u in enumerate(unknown)}
    size = len(unknown)
    rows: list[np.ndarray] = []
    rhs: list[float] = []

    def value(which: int, cell: Cell) -> tuple[int | None, float]:
        published = (first, second)[which].cells
        return (None, float(published[cell])) if cell in published else (index[(which, cell)], 0.0)

    for which, publication in enumerate((first, second)):
        equations: list[tuple[list[Cell], int]] = []
        if publication.total is not None:
            equations.append((cells, publication.total))
        for name, margins in publication.margins.items():
            d = publication.dimensions.index(name)
            equations += [([c for c in cells if c[d] == v], margins.get(v, 0)) for v in domains[d]]
        for members, total in equations:
            row = np.zeros(size)
            rest = float(total)
            for cell in members:
                at, known = value(which, cell)
                if at is None:
                    rest -= known
                else:
                    row[at] += 1
            rows.append(row)
            rhs.append(rest)
    upper_rows: list[np.ndarray] = []  # x_first - x_second <= 0, cell by cell
    upper_rhs: list[float] = []
    for cell in cells:
        (a, known_a), (b, known_b) = value(0, cell), value(1, cell)
        row = np.zeros(size)
        bound = known_b - known_a
        if a is not None:
            row[a] += 1
        if b is not None:
            row[b] -= 1
        if a is not None or b is not None:
            upper_rows.append(row)
            upper_rhs.append(bound)
    objective = np.zeros(size)
    objective[index[(1 if in_second else 0, target)]] = 1
    kwargs = {
        "A_eq": np.array(rows) if rows else None,
        "b_eq": np.array(rhs) if rows else None,
        "A_ub": np.array(upper_rows) if upper_rows else None,
        "b_ub": np.array(upper_rhs) if upper_rows else None,
        "bounds": [(0, None)] * size,
        "method": "highs",
    }
    low = linprog(objective, **kwargs)
    high = linprog(-objective, **kwargs)
    assert low.status == 0, "the two publications must be consistent"
    return low.fun, (-high.fun if high.status == 0 else float("inf"))


late_strategy = st.sampled_from([0, 0, 0, 0, 1, 2, 5, 12])


@st.composite
def revised_tables(draw: st.DrawFn) -> tuple[dict[Cell, int], dict[Cell, int], list[tuple[str, ...]], int]:
    counts, domains, k = draw(tables())
    later = {c: n + draw(late_strategy) for c, n in counts.items()}
    return counts, later, domains, k


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(revised_tables())
def test_a_revision_makes_no_small_cell_recoverable_alone_or_by_comparison(
    table: tuple[dict[Cell, int], dict[Cell, int], list[tuple[str, ...]], int],
) -> None:
    counts, later, domains, k = table
    first = _check(counts, domains, k)
    second = revise(first, domains, counts, later)
    assert all(n >= k and n == later[c] for c, n in second.cells.items())
    assert set(second.cells) <= set(first.cells), "a cell suppressed before was published"
    assert set(second.margins) <= set(first.margins) and (second.total is None or first.total is not None)
    for cell in itertools.product(*domains):
        for in_second, n in ((False, counts[cell]), (True, later[cell])):
            if 1 <= n < k:
                low, high = joint_attacker_range(first, second, domains, cell, in_second)
                assert low - 1e-6 <= n <= high + 1e-6
                assert high - low >= 1 - 1e-6, f"{cell} ({n}, revision {int(in_second)}): [{low}, {high}]"


def test_a_revision_cannot_shrink_a_count() -> None:
    domains = _domains([2])
    counts = {("d0v0",): 12, ("d0v1",): 3}
    first = protect("t", ["dim0"], domains, counts, 10)
    with pytest.raises(ValueError, match="smaller"):
        revise(first, domains, counts, {("d0v0",): 11, ("d0v1",): 3})
