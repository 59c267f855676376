"""``jointuse stats``: statistics with disclosure control (統計加工)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.exits import Format, fail

stats_app = typer.Typer(help="Statistics that cannot be traced back to a customer (統計加工).", no_args_is_help=True)


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
    from streams.errors import JointUseError
    from streams.policy.classification import load_schema
    from streams.policy.loader import load_policies
    from streams.settings import load_settings
    from streams.stats.preview import preview

    settings = load_settings()
    try:
        day = dt.date.fromisoformat(window)
    except ValueError:
        fail("--window must be a day, YYYY-MM-DD")
    try:
        policies = load_policies(policy or settings.policy_path)
        schema = load_schema(settings.schema_dir / "customer_record.v1.avsc")
        with file.open("rb") as records:
            found = preview(records, policies, schema, day=day, tables=table, now=dt.datetime.now(dt.UTC))
    except OSError:
        fail(f"cannot read {file}")
    except (JointUseError, ValueError) as exc:
        fail(exc)
    if output is Format.JSON:
        body = {
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
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        return
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
