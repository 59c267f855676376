"""The statistics preview and the book behind it, without a broker: only shared records count, no
published cell is below k, late records revise a published window."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from typer.testing import CliRunner

from streams.cli.main import app
from streams.devtools.synthetic import Generator, Mix
from streams.policy.calendar import JST
from streams.policy.classification import load_schema
from streams.policy.loader import PolicySet
from streams.serde.avro_codec import AvroCodec
from streams.settings import PROJECT_ROOT
from streams.stats.core.book import StatsBook
from streams.stats.core.publication import publication_record
from streams.stats.core.tables import domain
from streams.stats.core.windows import window_of
from streams.stats.preview import preview

DAY = "2026-03-01"  # the generator's records are timed from 2026-03-01 09:00 JST, one a second


def _lines(tmp_path: Path, count: int, *, stop_every: int = 0) -> tuple[Path, set[str], set[str]]:
    """Generated records, every ``stop_every``-th with a joint-use stop; returns the file, every
    customer and the stopped ones."""
    lines = Generator(seed=7, mix=Mix(invalid=0.0, joint_use_stop=0.0)).lines_by_source(count)["jcom"]
    customers, stopped, out = set(), set(), []
    for number, line in enumerate(lines):
        record = json.loads(line)
        customers.add(record["customer_id"])
        if stop_every and number % stop_every == 0:
            record["consent"] = {**(record.get("consent") or {}), "joint_use_stop": True}
            stopped.add(record["customer_id"])
        out.append(json.dumps(record, ensure_ascii=False))
    path = tmp_path / "jcom.jsonl"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path, customers, stopped


def _preview(path: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["stats", "preview", str(path), "--window", DAY, "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_withheld_records_are_never_counted(tmp_path: Path) -> None:
    path, customers, stopped = _lines(tmp_path, 2_000, stop_every=5)
    found = _preview(path, "--table", "subscribers_by_region")
    assert found["lines"]["withheld"] == len(stopped) > 0
    (table,) = found["tables"]
    # One cell per subject in this table (prefecture, age band, gender): the total is the subjects.
    assert table["total"] == len(customers - stopped) == found["lines"]["counted"]


def test_no_published_cell_is_below_k_and_small_cells_are_suppressed(tmp_path: Path, policies: PolicySet) -> None:
    path, _, _ = _lines(tmp_path, 3_000)
    k = policies.latest.statistics.k
    for table in _preview(path)["tables"]:
        assert table["k"] == k and table["cells"]
        assert all(cell["subjects"] >= k for cell in table["cells"])
        assert all(m >= k for margins in table["margins"].values() for m in margins.values())
        assert set(table) >= {"suppressed", "withheld_margins"}
    region = next(t for t in _preview(path)["tables"] if t["table"] == "subscribers_by_region")
    assert region["suppressed"]["below_k"] > 0  # 3,000 subjects over 48 × 8 × 3 cells: many small ones


def test_the_table_view_shows_counts_and_the_window(tmp_path: Path) -> None:
    path, _, _ = _lines(tmp_path, 500)
    result = CliRunner().invoke(app, ["stats", "preview", str(path), "--window", DAY])
    assert result.exit_code == 0, result.output
    assert "subscribers_by_region: 2026-02-23 to 2026-03-01" in result.output  # Monday to Sunday
    assert "services_daily: 2026-03-01 to 2026-03-01" in result.output
    bad = CliRunner().invoke(app, ["stats", "preview", str(path), "--window", "March"])
    assert bad.exit_code == 2


TOKYO_MOBILE = {  # one subject's record as the statistics read it: one cell in each table
    "address": "東京都千代田区丸の内1-1",
    "birth_date": 7_000,
    "gender": "female",
    "service_usage": [{"service": "mobile", "plan": "S"}],
    "payment_status": {"status": "paid"},
}


def test_a_late_record_revises_a_published_window_and_an_early_one_waits(policies: PolicySet) -> None:
    policy = policies.latest
    book = StatsBook(policy, grace=dt.timedelta(hours=1))
    day = dt.datetime(2026, 3, 2, 10, tzinfo=JST)  # a Monday
    for subject in range(12):
        book.add(subject=f"s{subject}", record=TOKYO_MOBILE, purposes=("jointuse.billing",), at=day)
    assert book.advance(dt.datetime(2026, 3, 3, 0, 30, tzinfo=JST)) == []  # within the grace
    first = {w.table: p for w, p in book.advance(dt.datetime(2026, 3, 3, 1, 0, tzinfo=JST))}
    assert set(first) == {"services_daily"} and first["services_daily"].total == 12
    book.add(subject="s99", record=TOKYO_MOBILE, purposes=("jointuse.billing",), at=day)  # late
    assert book.late == 1
    (window, revision), *_ = book.advance(dt.datetime(2026, 3, 3, 2, 0, tzinfo=JST))
    assert (window.table, revision.revision, revision.total) == ("services_daily", 1, 13)
    assert set(revision.cells) <= set(first["services_daily"].cells)
    weekly = book.advance(dt.datetime(2026, 3, 9, 1, 0, tzinfo=JST))
    assert [(w.table, w.start, p.revision) for w, p in weekly] == [("subscribers_by_region", dt.date(2026, 3, 2), 0)]
    assert window_of("weekly", day) == (dt.date(2026, 3, 2), dt.date(2026, 3, 9))


def test_the_published_schema_has_no_identifier_and_every_value_is_from_a_closed_list(
    tmp_path: Path, policies: PolicySet
) -> None:
    schema = json.loads((PROJECT_ROOT / "schemas" / "statistics" / "stats_table.v1.avsc").read_text())
    customer = json.loads((PROJECT_ROOT / "schemas" / "customer_record.v1.avsc").read_text())
    names = set()

    def walk(fields: list[dict]) -> None:
        for spec in fields:
            names.add(spec["name"])
            kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            for kind in kinds:
                if isinstance(kind, dict) and kind.get("type") == "array" and isinstance(kind["items"], dict):
                    walk(kind["items"].get("fields", []))
            assert "jointuse.class" not in spec

    walk(schema["fields"])
    assert not names & {f["name"] for f in customer["fields"]}, "a customer field in the statistics schema"
    path, _, _ = _lines(tmp_path, 1_500)
    found = preview(
        path.read_bytes().splitlines(),
        policies,
        load_schema(PROJECT_ROOT / "schemas" / "customer_record.v1.avsc"),
        day=dt.date(2026, 3, 1),
        now=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
    )
    codec = AvroCodec(schema)
    for _, start, end, publication in found.publications:
        native = publication_record(
            publication,
            start=start,
            end=end,
            policy_version="2026-01",
            published_at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        )
        back = codec.decode(codec.encode(native))
        allowed = [set(domain(d, policies.latest)) for d in back["dimensions"]]
        for cell in back["cells"]:
            assert all(v in allowed[i] for i, v in enumerate(cell["values"])) and cell["subjects"] >= back["k"]
        for margin in back["margins"]:
            assert margin["value"] in allowed[back["dimensions"].index(margin["dimension"])]


def test_a_book_rebuilt_after_a_restart_publishes_what_the_first_would_have(policies: PolicySet) -> None:
    """The statistics worker rebuilds its book from its tables: the subjects, then what was
    published. The rebuilt book has the same open windows and publishes the same, no more."""
    from streams.stats.core.publication import from_state, publication_state

    policy = policies.latest
    days = [dt.datetime(2026, 3, 2, 10, tzinfo=JST), dt.datetime(2026, 3, 3, 10, tzinfo=JST)]  # Monday, Tuesday
    added = [(f"s{day.day}-{n}", day) for day in days for n in range(12)]

    def counted() -> StatsBook:
        book = StatsBook(policy, grace=dt.timedelta(hours=1))
        for subject, day in added:
            book.add(subject=subject, record=TOKYO_MOBILE, purposes=("jointuse.billing",), at=day)
        return book

    first = counted()
    assert first.open_windows == 3  # two days and their week
    assert [(w.table, w.start) for w, _ in first.advance(dt.datetime(2026, 3, 3, 1, 0, tzinfo=JST))] == [
        ("services_daily", dt.date(2026, 3, 2))
    ]
    rebuilt = counted()
    for (table, start), window in first.windows.items():
        if window.published is not None:
            rebuilt.restore(
                table, start, *from_state(publication_state(window.published, window.published_counts or {}))
            )
    assert rebuilt.open_windows == first.open_windows == 2
    assert not rebuilt.due(dt.datetime(2026, 3, 3, 2, 0, tzinfo=JST))  # published and unchanged: no revision
    later = dt.datetime(2026, 3, 10, 1, 0, tzinfo=JST)
    expected = [(w.table, w.start, p.revision, p.total) for w, p in first.advance(later)]
    assert [(w.table, w.start, p.revision, p.total) for w, p in rebuilt.advance(later)] == expected
    assert [(t, s) for t, s, _, _ in expected] == [
        ("services_daily", dt.date(2026, 3, 3)),
        ("subscribers_by_region", dt.date(2026, 3, 2)),
    ]
    assert rebuilt.open_windows == 0
