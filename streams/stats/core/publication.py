"""What is published of a statistics table in one window, and its two forms: the record of the
published topic, and the state a revision builds on. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.stats.core.tables import Cell


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
