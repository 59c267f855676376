"""The ``jointuse`` command line.

Exit codes (every command):
  0  success (for ``filter``: all input was read, whatever the decisions)
  1  the command ran and found problems (``policy check``, ``schema check``, ``policy diff`` needing consent)
  2  bad arguments, an unreadable or invalid policy or schema file, or a missing service
  3  a Kafka or schema-registry error while running
  70 a worker stopped on a fatal Kafka error; restarted, it resumes from the last committed transaction
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from streams.cli import (
    catalog_command,
    dq_commands,
    infra_commands,
    provide_command,
    replay_commands,
    rights_commands,
)
from streams.cli.access_commands import access_app
from streams.cli.audit_commands import audit_app
from streams.cli.exits import Lang, fail
from streams.cli.incident_commands import incident_app
from streams.cli.options import SchemaVersion
from streams.cli.stats_commands import stats_app
from streams.errors import Exit, JointUseError, PolicyError, SchemaError
from streams.policy.diff import diff_policies
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet, load_policies, load_policy
from streams.policy.model import Policy
from streams.policy.notice import render_handling, render_notice
from streams.serde.compatibility import check_backward, schema_versions
from streams.serde.governed import governed_version
from streams.serde.json_form import JsonForm
from streams.settings import load_settings

app = typer.Typer(
    name="jointuse",
    help="Joint use (共同利用) of customer records across group companies over Kafka.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    epilog="Exit codes: 0 ok; 1 problems found; 2 bad arguments or files; 3 Kafka/registry error; "
    "70 a worker stopped on a fatal Kafka error (restart it).",
)


@app.callback()
def _cli_logging() -> None:
    """Warnings of any library, the Kafka clients' included, as JSON lines on stderr, each cause
    once while the command runs (a worker command configures its own level and a line per cause
    and minute when it starts)."""
    from streams.logs import configure

    configure("WARNING", fold_seconds=math.inf)


policy_app = typer.Typer(help="Check, render and compare joint-use notices.", no_args_is_help=True)
schema_app = typer.Typer(help="Check and publish the governed Avro schemas.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(schema_app, name="schemas")
app.add_typer(schema_app, name="schema", hidden=True)  # the singular, for scripts that still use it
app.add_typer(access_app, name="access")
app.add_typer(audit_app, name="audit")
app.add_typer(incident_app, name="incident")
app.add_typer(stats_app, name="stats")
infra_commands.register(app)
rights_commands.register(app)
dq_commands.register(app)
provide_command.register(app)
app.command("replay")(replay_commands.replay_command)
app.command("catalog")(catalog_command.catalog_command)

PolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy file or directory of versions (default: JOINTUSE_POLICY_PATH)."),
]


SchemasOption = Annotated[
    Path | None, typer.Option("--schemas", help="Directory of Avro schemas (default: JOINTUSE_SCHEMA_DIR).")
]


def _schema_dir(path: Path | None) -> Path:
    """The schemas directory given, or the deployment's (``JOINTUSE_SCHEMA_DIR``); it must exist."""
    directory = path or load_settings().schema_dir
    if not directory.is_dir():
        fail(f"{directory}: not a directory of schemas")
    return directory


def _policies(path: Path | None) -> PolicySet:
    try:
        return load_policies(path or load_settings().policy_path)
    except PolicyError as exc:
        fail(str(exc))


@app.command("filter")
def filter_command(
    source: Annotated[str, typer.Option("--source", help="Company that produced the records.")],
    policy: PolicyOption = None,
    schema_version: SchemaVersion = None,
) -> None:
    """Decide JSON Lines records from stdin offline; one JSON decision per input line on stdout.

    Example: jointuse generate --count 5 | jointuse filter --source jcom
    """
    from streams.cli.filter import filter_lines

    policies = _policies(policy)
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


@policy_app.command("check")
def policy_check(
    policy: PolicyOption = None,
    schemas: SchemasOption = None,
) -> None:
    """Validate the policy against the governed schemas: every field classified and naming a known
    item, and everything a worker builds at run time (delivery schemas, codecs, routes) built now.

    Example: jointuse policy check --policy policies/jcom-group.yaml
    """
    from streams.serde.preflight import runtime_problems

    policies = _policies(policy)
    schemas = _schema_dir(schemas)
    problems = runtime_problems(schemas, policies)
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} problem(s)")
        raise typer.Exit(Exit.PROBLEMS)
    versions = ", ".join(p.version for p in policies.versions)
    typer.echo(
        f"ok: policy versions [{versions}], {len(list(schemas.glob('*.avsc')))} schema(s), every field classified"
    )


@policy_app.command("notice")
def policy_notice(
    policy: PolicyOption = None,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the notice.")] = Lang.JA,
    version: Annotated[str | None, typer.Option("--version", help="Version to render (default: latest).")] = None,
) -> None:
    """Render the public joint-use notice that the pipeline enforces.

    Example: jointuse policy notice --lang en
    """
    chosen = _version(policy, version)
    typer.echo(render_notice(chosen, "ja" if lang is Lang.JA else "en"), nl=False)


def _version(policy: Path | None, version: str | None) -> Policy:
    """The policy version ``--version`` names (the latest without it), or one line naming the file."""
    policies = _policies(policy)
    try:
        return policies.by_version(version) if version else policies.latest
    except PolicyError:
        known = ", ".join(p.version for p in policies.versions)
        fail(f"{policy or load_settings().policy_path}: --version: no such version (versions: {known})")


@policy_app.command("render")
def policy_render(
    policy: PolicyOption = None,
    version: Annotated[str | None, typer.Option("--version", help="Version to render (default: latest).")] = None,
) -> None:
    """Render the insurer's own notice (個人情報の取扱いについて) as far as the policy governs it:
    its purposes of use (section 1), the bases it provides personal data outside on (section 5),
    provision abroad with its countries (section 6) and sensitive data (section 8). Exit 1 when the
    policy holds no insurer's notice (no handling section).

    Example: jointuse policy render --policy policies/jcom-group.yaml
    """
    chosen = _version(policy, version)
    text = render_handling(chosen)
    if not text:
        fail(f"policy {chosen.version} holds no insurer's notice (handling)", Exit.PROBLEMS)
    typer.echo(text, nl=False)


@policy_app.command("diff")
def policy_diff(
    old: Annotated[Path, typer.Argument(help="The published version.")],
    new: Annotated[Path, typer.Argument(help="The proposed version.")],
) -> None:
    """What changed between two notice versions, and what each change requires.

    Every field of the notice is compared. Each change is classed: consent or advance notice (APPI
    Art. 27(6), Art. 28), notify without delay, or internal. Exit 1 when a change needs consent or
    the dates are inconsistent.
    Example: jointuse policy diff policies/jcom-group.yaml proposed.yaml
    """
    try:
        result = diff_policies(load_policy(old), load_policy(new))
    except PolicyError as exc:
        fail(str(exc))
    typer.echo(f"{result.old_version} -> {result.new_version}: {len(result.changes)} change(s)")
    for category, changes in result.by_category().items():
        typer.echo(f" {category}:")
        for change in changes:
            typer.echo(f"  {change}")
    for problem in result.problems:
        typer.echo(f"  problem: {problem}")
    if result.needs_consent or result.problems:
        raise typer.Exit(Exit.PROBLEMS)


@schema_app.command("check")
def schema_check(
    schemas: SchemasOption = None,
    policy: PolicyOption = None,
) -> None:
    """Check the governed schemas: each version reads data of every earlier one (backward,
    transitive), and everything a worker builds from them under every policy version builds.

    Example: jointuse schemas check
    """
    from streams.serde.preflight import runtime_problems

    schemas = _schema_dir(schemas)
    try:
        groups = schema_versions(schemas)
        problems = [str(p) for versions in groups.values() for p in check_backward(versions)]
    except SchemaError as exc:
        fail(str(exc))
    problems += runtime_problems(schemas, _policies(policy))
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(Exit.PROBLEMS)
    for name, versions in groups.items():
        typer.echo(f"ok: {name}: {', '.join(p.name for p in versions)} backward compatible")


@schema_app.command("publish")
def schema_publish(
    registry: Annotated[str | None, typer.Option("--registry", help="Schema registry URL.")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Topic name prefix.")] = None,
    policy: PolicyOption = None,
) -> None:
    """Register the governed versions, oldest first, under every joint user's ingest subject, and
    set each subject's compatibility to BACKWARD. Producers then write with
    auto.register.schemas=false and use.latest.version=true. Idempotent.

    Example: jointuse schemas publish
    """
    from streams.serde.governed import GovernedSchemas
    from streams.serde.registry import Registry
    from streams.topology import Topology

    settings = load_settings(schema_registry_url=registry, topic_prefix=prefix)
    policies = _policies(policy)
    try:
        governed = GovernedSchemas.load(settings.schema_dir)
        client = Registry(settings.registry_conf())
        topology = Topology(settings.topic_prefix)
        for company in sorted({u.id for p in policies.versions for u in p.joint_users}):
            subject = f"{topology.ingest(company)}-value"
            for version in governed.versions:
                schema_id = client.register(subject, version.classified.raw)
                typer.echo(f"{subject}: {version.name} id {schema_id}")
            client.set_compatibility(subject, "BACKWARD")
    except SchemaError as exc:
        fail(str(exc))


def main() -> None:
    try:
        app()
    except JointUseError as exc:  # one of ours that escaped a command: a bad setting (2), a service (3), ...
        try:
            fail(exc)
        except typer.Exit as done:
            sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
