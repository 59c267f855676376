"""``jointuse stats``: statistics with disclosure control (統計加工)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streams.cli.exits import Format, fail
from streams.cli.infra_commands import Bootstrap, Prefix, settings_from_options
from streams.cli.options import FaustLogLevel, FaustLogLevelOption
from streams.errors import Exit

if TYPE_CHECKING:
    from streams.stats.preview import Preview

stats_app = typer.Typer(help="Statistics that cannot be traced back to a customer (統計加工).", no_args_is_help=True)


@stats_app.command("run")
def stats_run(
    log_level: FaustLogLevelOption = FaustLogLevel.WARN,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Run the statistics worker: counts what each shared record adds to the policy's tables and
    publishes each window to `<prefix>.stats.<table>.v1` once it has closed in event time, then a
    revision whenever late records change it (docs/statistics.md). One worker counts; a second
    stands by. Runs until SIGTERM/SIGINT (exit 0); exit 2 when it cannot start for its settings,
    policy or schema; 3 when no broker answers at start-up; faust's 1 when it fails otherwise.

    \b
    Examples:
      jointuse stats run
      jointuse stats show services_daily
    """
    from streams.cli.launch import run_faust_app
    from streams.stats.app import build_stats_app

    settings = settings_from_options(bootstrap, None, prefix)
    run_faust_app("the statistics worker", settings, lambda: build_stats_app(settings), log_level=log_level)


@stats_app.command("show")
def stats_show(
    table: Annotated[str, typer.Argument(help="The table's id in the policy.")],
    window: Annotated[
        str | None, typer.Option("--window", help="Only the window holding this day (YYYY-MM-DD).")
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TABLE,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Print the latest published revision of each window of a statistics table, as its recipients
    read it from `<prefix>.stats.<table>.v1`.

    \b
    Examples:
      jointuse stats show services_daily
      jointuse stats show subscribers_by_region --window 2026-03-01 --format json

    Exit codes: 0 printed; 1 nothing published yet; 2 bad arguments; 3 a Kafka or registry error.
    """
    from streams.errors import JointUseError
    from streams.stats.published import latest_publications

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        day = dt.date.fromisoformat(window) if window else None
    except ValueError:
        fail("--window must be a day, YYYY-MM-DD")
    try:
        found = latest_publications(settings, table, day=day)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    if not found:
        fail(f"nothing published for {table} yet", Exit.PROBLEMS)
    if output is Format.JSON:
        sys.stdout.write(json.dumps(found, ensure_ascii=False, default=str) + "\n")
        return
    for record in found:
        last = record["window_to"] - dt.timedelta(days=1)
        total = record["total"] if record["total"] is not None else "withheld"
        typer.echo(
            f"{record['table']}: {record['window_from']} to {last}, revision {record['revision']}, "
            f"by {', '.join(record['dimensions'])} (k = {record['k']}); total: {total}; "
            f"suppressed: {record['suppressed_below_k']} below k, {record['suppressed_to_protect']} more"
        )
        for cell in sorted(record["cells"], key=lambda c: (-c["subjects"], c["values"])):
            typer.echo(f"  {' / '.join(cell['values'])}: {cell['subjects']:,}")


@stats_app.command("preview")
def stats_preview(
    file: Annotated[Path, typer.Argument(help="JSON Lines of customer records (as `jointuse produce` reads).")],
    window: Annotated[str, typer.Option("--window", help="A day (YYYY-MM-DD, in Japan): its daily or weekly window.")],
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (repeatable; default: every table).")
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TABLE,
    policy: Annotated[Path | None, typer.Option("--policy", help="Policy file or directory.")] = None,
) -> None:
    """Show, offline, what each statistics table would publish for the window holding a day, and
    what it would suppress: counts only, never a record. Records are decided as the workers decide
    them; only shared ones count (a stop of use, an invalid record: not counted).

    \b
    Examples:
      jointuse generate --count 5000 --seed 1 --source jcom > jcom.jsonl
      jointuse stats preview jcom.jsonl --window 2026-11-23
      jointuse stats preview jcom.jsonl --window 2026-11-23 --table services_daily --format json

    Exit codes: 0 shown; 2 bad arguments, an unreadable file or policy.
    """
    found = _preview(file, window, table, policy)
    if output is Format.JSON:
        sys.stdout.write(json.dumps(_preview_json(found), ensure_ascii=False) + "\n")
    else:
        _print_preview(found)


def _preview(file: Path, window: str, tables: list[str] | None, policy: Path | None) -> Preview:
    """The file's records decided and counted into each table's window holding the day."""
    from streams.errors import JointUseError
    from streams.policy.loader import load_policies
    from streams.serde.governed import governed_version
    from streams.settings import load_settings
    from streams.stats.preview import preview

    settings = load_settings()
    try:
        day = dt.date.fromisoformat(window)
    except ValueError:
        fail("--window must be a day, YYYY-MM-DD")
    try:
        policies = load_policies(policy or settings.policy_path)
        schema = governed_version(settings.schema_dir).classified
        with file.open("rb") as records:
            return preview(records, policies, schema, day=day, tables=tables, now=dt.datetime.now(dt.UTC))
    except OSError:
        fail(f"cannot read {file}")
    except (JointUseError, ValueError) as exc:
        fail(exc)


def _preview_json(found: Preview) -> dict[str, Any]:
    return {
        "lines": dict(found.lines),
        "tables": [
            {
                "table": name,
                "window": {"from": start.isoformat(), "to": end.isoformat()},
                "k": pub.k,
                "dimensions": list(pub.dimensions),
                "cells": [{"cell": list(cell), "subjects": n} for cell, n in sorted(pub.cells.items())],
                "margins": {d: dict(sorted(m.items())) for d, m in pub.margins.items()},
                "total": pub.total,
                "suppressed": {"below_k": pub.sensitive, "to_protect_them": pub.complementary},
                "withheld_margins": list(pub.withheld_margins),
            }
            for name, start, end, pub in found.publications
        ],
    }


def _print_preview(found: Preview) -> None:
    seen = found.lines
    typer.echo(
        f"{seen['read']:,} lines: {seen['shared']:,} shared, {seen['withheld']:,} withheld, "
        f"{seen['invalid']:,} invalid, {seen['unreadable']:,} unreadable (only shared records are counted)"
    )
    for name, start, end, pub in found.publications:
        last = end - dt.timedelta(days=1)
        typer.echo(f"\n{name}: {start} to {last}, by {', '.join(pub.dimensions)} (k = {pub.k})")
        typer.echo(
            f"  published: {len(pub.cells):,} cells; suppressed: {pub.sensitive:,} below k, "
            f"{pub.complementary:,} more to protect them; total: "
            + (f"{pub.total:,}" if pub.total is not None else "withheld")
        )
        margins = ", ".join(pub.margins) or "none"
        typer.echo(
            f"  margins published: {margins}"
            + (f" (withheld: {', '.join(pub.withheld_margins)})" if pub.withheld_margins else "")
        )
        for cell, n in sorted(pub.cells.items(), key=lambda item: (-item[1], item[0])):
            typer.echo(f"  {' / '.join(cell)}: {n:,}")
