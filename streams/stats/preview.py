"""What the statistics tables would publish for a file of records, offline: the records are decided
by the engine as the workers decide them, and only shared ones are counted."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.policy.calendar import JST
from streams.policy.classification import ClassifiedSchema
from streams.policy.decision import Status
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.serde.json_form import JsonForm, JsonFormError
from streams.serde.jsonl import parse_line
from streams.stats.core.book import StatsBook
from streams.stats.core.publication import Publication
from streams.stats.core.suppression import protect
from streams.stats.core.windows import window_of

FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


@dataclass
class Preview:
    publications: list[tuple[str, dt.date, dt.date, Publication]] = field(default_factory=list)
    lines: Counter[str] = field(default_factory=Counter)  # read, unreadable, shared, withheld, invalid, counted


def preview(
    lines: Iterable[bytes],
    policies: PolicySet,
    schema: ClassifiedSchema,
    *,
    day: dt.date,
    tables: Iterable[str] | None = None,
    now: dt.datetime,
) -> Preview:
    """The publication of every table's window holding ``day``. A record's event time is its
    ``updated_at``; a record without one counts at noon on ``day`` (in Japan)."""
    policy = policies.latest
    wanted = set(tables) if tables is not None else {t.id for t in policy.statistics.tables}
    unknown = wanted - {t.id for t in policy.statistics.tables}
    if unknown:
        raise ValueError(f"no statistics table {sorted(unknown)[0]} in the policy")
    engine = Engine(schema, policies)
    form = JsonForm(schema)
    book = StatsBook(policy, grace=dt.timedelta(0))
    found = Preview()
    noon = dt.datetime.combine(day, dt.time(12), JST)
    for raw in lines:
        found.lines["read"] += 1
        value, problem = parse_line(raw)
        if problem is not None or type(value) is not dict:
            found.lines["unreadable"] += 1
            continue
        try:
            native = form.to_native(value)
        except JsonFormError:
            found.lines["unreadable"] += 1
            continue
        source = native.get("source_company")
        decision = engine.decide(native, source if isinstance(source, str) else "", now=now)
        found.lines[decision.status.value] += 1
        if decision.status is not Status.SHARED:
            continue  # withheld (a stop of use, no recipient) and invalid records are never counted
        updated = native.get("updated_at")
        at = dt.datetime.fromtimestamp(updated / 1000, dt.UTC) if isinstance(updated, int) else noon
        if book.add(subject=f"{source}:{native['customer_id']}", record=native, purposes=decision.purposes, at=at):
            found.lines["counted"] += 1
    for window, publication in book.advance(FAR_FUTURE):
        table = book.tables[window.table]
        if window.table in wanted and window.start == window_of(table.window, noon)[0]:
            found.publications.append((window.table, window.start, window.end, publication))
    for table_id in sorted(wanted - {p[0] for p in found.publications}):  # no record in its window
        table = book.tables[table_id]
        start, end = window_of(table.window, noon)
        nothing = protect(table_id, table.dimensions, book.domains[table_id], {}, policy.statistics.k)
        found.publications.append((table_id, start, end, nothing))
    found.publications.sort(key=lambda p: p[0])
    return found
