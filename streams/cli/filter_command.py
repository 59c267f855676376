"""``jointuse filter``: decide JSON Lines records offline, as a worker would."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated

import typer

from streams.cli.exits import fail
from streams.cli.options import PolicyOption, SchemaVersion, policies_of
from streams.errors import SchemaError
from streams.policy.engine import Engine
from streams.serde.governed import governed_version
from streams.serde.json_form import JsonForm
from streams.settings import load_settings

top_level = typer.Typer()


@top_level.command("filter")
def filter_command(
    source: Annotated[str, typer.Option("--source", help="Company that produced the records.")],
    policy: PolicyOption = None,
    schema_version: SchemaVersion = None,
) -> None:
    """Decide JSON Lines records from stdin offline; one JSON decision per input line on stdout.

    Example: jointuse generate --count 5 | jointuse filter --source jcom
    """
    from streams.cli.filter import filter_lines

    policies = policies_of(policy)
    try:
        classified = governed_version(load_settings().schema_dir, schema_version).classified
    except SchemaError as exc:
        fail(str(exc))
    engine = Engine(classified, policies)
    form = JsonForm(classified)
    now = dt.datetime.now(dt.UTC)
    out = sys.stdout
    for result in filter_lines(sys.stdin.buffer, source=source, engine=engine, form=form, now=now):
        out.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()
