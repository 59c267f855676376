"""``jointuse dq``: Great Expectations suites on demand."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.exits import fail
from streams.cli.infra_commands import Bootstrap, Prefix, RegistryUrl, settings_from_options
from streams.cli.progress import range_progress
from streams.cli.range_options import FromOffset, FromTime, Partition, ToOffset, ToTime
from streams.errors import ConfigError, Exit, JointUseError

dq_app = typer.Typer(help="Data quality with Great Expectations.", no_args_is_help=True)


@dq_app.command("run")
def dq_run(
    topic: Annotated[str, typer.Option("--topic", help="An ingest or delivery topic.")],
    partition: Partition = None,
    from_offset: FromOffset = None,
    to_offset: ToOffset = None,
    from_time: FromTime = None,
    to_time: ToTime = None,
    docs: Annotated[Path | None, typer.Option("--docs", help="Write GX Data Docs (HTML) to this folder.")] = None,
    max_records: Annotated[int, typer.Option("--max-records", help="Validate at most N records.", min=1)] = 200_000,
    json_output: Annotated[bool, typer.Option("--json", help="The result as JSON.")] = False,
    bootstrap: Bootstrap = None,
    registry: RegistryUrl = None,
    prefix: Prefix = None,
) -> None:
    """Validate a range of a topic against its suite (dq/suites/ingest.json or delivery.json).

    Data Docs never show values: unexpected values are not collected.
    \b
    Examples:
      jointuse dq run --topic jointuse.ingest.jcom.customer.v1 --docs build/dq
      jointuse dq run --topic jointuse.deliver.jcom-insurance.customer.v1 --from-time 2026-06-01T00:00:00+09:00

    \b
    Exit codes: 0 every expectation passed; 1 an expectation failed or values were undecodable;
    2 bad arguments; 3 Kafka or registry error.
    """
    from streams.kafka.reader import RangeSpec
    from streams.quality.batch_run import run_batch
    from streams.replay.replay import parse_time

    settings = settings_from_options(bootstrap, registry, prefix)
    try:
        spec = RangeSpec(topic, partition, from_offset, to_offset, parse_time(from_time), parse_time(to_time))
    except ConfigError as exc:
        fail(exc, Exit.USAGE)
    started = time.monotonic()
    with range_progress("reading") as bar:
        task = bar.add_task("dq", total=None, rate="")

        def progressed(done: int) -> None:
            bar.update(task, completed=done, rate=f"{done / max(time.monotonic() - started, 1e-6):,.0f} rec/s")

        try:
            run = run_batch(settings, spec, docs_dir=docs, max_records=max_records, on_progress=progressed)
        except ConfigError as exc:
            fail(exc, Exit.USAGE)
        except JointUseError as exc:
            fail(exc, Exit.SERVICE)
    result = run.result
    if json_output:
        typer.echo(
            json.dumps(
                {**result.to_dict(), "read": run.read, "undecodable": run.undecodable, "tombstones": run.tombstones},
                indent=2,
            )
        )
    else:
        passed = result.evaluated - len(result.failures)
        typer.echo(
            f"{result.suite} on {result.rows} records of {topic}: {passed}/{result.evaluated} expectations passed"
            + (f"; {run.undecodable} undecodable value(s)" if run.undecodable else "")
        )
        for failure in result.failures:
            typer.echo(
                f"  FAILED {failure.expectation} on {failure.column}: {failure.unexpected_count} unexpected "
                f"({failure.unexpected_percent}%) - {failure.why}"
            )
        if docs is not None:
            typer.echo(f"Data Docs: {docs / 'index.html'}")
    if not run.success:
        raise typer.Exit(Exit.PROBLEMS)


@dq_app.command("suites")
def dq_suites(
    write: Annotated[bool, typer.Option("--write", help="Write them to JOINTUSE_DQ_SUITES_DIR.")] = False,
) -> None:
    """Print (or write) the suites derived from the schema and the policy.

    Example: jointuse dq suites --write
    """
    from streams.policy.loader import load_policies
    from streams.quality.suites_store import generated, render, write_suites
    from streams.serde.governed import governed_version

    settings = settings_from_options(None, None, None)
    suites = generated(governed_version(settings.schema_dir).classified, load_policies(settings.policy_path))
    if write:
        for path in write_suites(settings.dq_suites_dir, suites):
            typer.echo(f"wrote {path}")
        return
    for suite in suites.values():
        typer.echo(render(suite), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(dq_app, name="dq")
