"""``jointuse replay``: reprocess stored ingest records under a policy; ``--dry-run`` compares."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streams.cli.exits import fail
from streams.cli.infra_commands import Bootstrap, Prefix, RegistryUrl, settings_from_options
from streams.cli.progress import range_progress
from streams.cli.range_options import FromOffset, FromTime, Partition, ToOffset, ToTime
from streams.errors import ConfigError, Exit, JointUseError
from streams.kafka.reader import RangeSpec
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.replay.replay import Replayer, ReplayStats, Target

top_level = typer.Typer()


@top_level.command("replay")
def replay_command(
    topic: Annotated[str, typer.Option("--topic", help="The ingest topic to replay.")],
    partition: Partition = None,
    from_offset: FromOffset = None,
    to_offset: ToOffset = None,
    from_time: FromTime = None,
    to_time: ToTime = None,
    key: Annotated[str | None, typer.Option("--key", help="Only records with this key (customer id).")] = None,
    policy_path: Annotated[Path | None, typer.Option("--policy", help="Policy file or directory to apply.")] = None,
    policy_version: Annotated[
        str | None, typer.Option("--policy-version", help="Apply this version of the configured notice.")
    ] = None,
    to_topic: Annotated[str | None, typer.Option("--to-topic", help="Write every delivery to this topic.")] = None,
    to_file: Annotated[Path | None, typer.Option("--to-file", help="Write decisions as JSON Lines here.")] = None,
    redeliver: Annotated[
        bool, typer.Option("--redeliver", help="Deliver through the normal delivery topics (with audit).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compare with the audit topic's decisions; write nothing.")
    ] = False,
    replay_id: Annotated[
        str | None, typer.Option("--replay-id", help="Name the replay (default: derived from the arguments).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Dry run: the report as JSON.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records per transaction / checkpoint.", min=1)] = 500,
    bootstrap: Bootstrap = None,
    registry: RegistryUrl = None,
    prefix: Prefix = None,
) -> None:
    """Run stored ingest records through the worker's engine under a chosen policy version.

    Running the same replay again (or after Ctrl-C or a crash) resumes where it stopped and never
    writes a record twice. Stop-of-use and erasure requests apply.

    \b
    Examples:
      jointuse replay --topic jointuse.ingest.jcom.customer.v1 --policy-version 2026-07 --redeliver
      jointuse replay --topic jointuse.ingest.jcom.customer.v1 --from-time 2026-06-01T00:00:00+09:00 --to-file out.jsonl
      jointuse replay --topic jointuse.ingest.jcom.customer.v1 --policy policies/next.yaml --dry-run

    \b
    Exit codes: 0 done (dry run: no difference); 1 dry run found differences; 2 bad arguments;
    3 Kafka or registry error (run the same command again to resume).
    """
    from streams.policy.loader import load_policies
    from streams.replay.replay import Replayer, parse_time

    targets = [t for t in (to_topic is not None, to_file is not None, redeliver) if t]
    if dry_run == bool(targets) or len(targets) > 1:
        fail("give one of --to-topic, --to-file, --redeliver, or --dry-run")
    settings = settings_from_options(bootstrap, registry, prefix)
    try:
        policies = load_policies(policy_path or settings.policy_path)
        policy = policies.latest
        if policy_version is not None:
            policy = policies.by_version(policy_version)
        spec = RangeSpec(topic, partition, from_offset, to_offset, parse_time(from_time), parse_time(to_time), key)
    except JointUseError as exc:
        fail(exc, Exit.USAGE)

    if dry_run:
        _dry_run(settings, spec, policy, policies, json_output)
        return
    target = _target(to_topic, to_file)
    try:
        replayer = Replayer(settings, spec, policy, policies, target, replay_id=replay_id, batch_size=batch_size)
    except ConfigError as exc:
        fail(exc, Exit.USAGE)
    stats = _run_with_progress(replayer)
    typer.echo(json.dumps(_summary(stats, policy, target)))


def _target(to_topic: str | None, to_file: Path | None) -> Target:
    """Where the replay writes: the topic or the file given, else the normal delivery topics."""
    from streams.replay.replay import Target

    if to_topic:
        return Target("topic", topic=to_topic)
    if to_file:
        return Target("file", path=to_file)
    return Target("redeliver")


def _run_with_progress(replayer: Replayer) -> ReplayStats:
    """Runs the replay under a progress bar: records done of those planned, and the rate."""
    started = time.monotonic()
    with range_progress(f"replay {replayer.id}") as bar:
        task = bar.add_task("replay", total=None, rate="")

        def planned(total: int) -> None:
            bar.update(task, total=total)

        def progressed(done: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, rate=f"{rate:,.0f} rec/s")

        try:
            return replayer.run(on_plan=planned, on_progress=progressed)
        except ConfigError as exc:
            fail(exc, Exit.USAGE)
        except JointUseError as exc:
            fail(exc, Exit.SERVICE)


def _summary(stats: ReplayStats, policy: Policy, target: Target) -> dict[str, Any]:
    return {
        "replay_id": stats.replay_id,
        "policy_version": policy.version,
        "target": target.describe(),
        "resumed": stats.resumed,
        "read": stats.read,
        "statuses": stats.by_status,
        "written": stats.written,
        "seconds": round(stats.seconds, 2),
    }


def _dry_run(settings: Settings, spec: RangeSpec, policy: Policy, policies: PolicySet, json_output: bool) -> None:
    from streams.replay.dry_run import dry_run

    try:
        report = dry_run(settings, spec, policy, policies)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    rows = report.rows()
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "policy_version": policy.version,
                    "compared": report.compared,
                    "unchanged": report.unchanged,
                    "changed": report.changed,
                    "without_audit": report.without_audit,
                    "differences": rows,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        typer.echo(
            f"policy {policy.version}: compared {report.compared} records with the audit; "
            f"{report.unchanged} unchanged, {report.changed} changed, {report.without_audit} without an audit event"
        )
        if rows:
            typer.echo(f"{'change':22} {'recipient':16} {'what':34} {'records':>8}  sample keys")
            for row in rows:
                change = f"{row['kind']} {row['direction']}"
                typer.echo(
                    f"{change:22} {row['recipient'] or '-':16} {row['what'] or '-':34} {row['records']:>8}  "
                    + ", ".join(row["sample_keys"])
                )
    if report.changed:
        raise typer.Exit(Exit.PROBLEMS)
