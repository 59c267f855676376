"""``jointuse policy``: check, render and compare joint-use notices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.exits import Lang, fail
from streams.cli.options import PolicyOption, SchemasOption, policies_of, schema_dir_of
from streams.errors import Exit, PolicyError
from streams.policy.diff import diff_policies
from streams.policy.loader import load_policy
from streams.policy.model import Policy
from streams.policy.notice import render_handling, render_notice
from streams.settings import load_settings

policy_app = typer.Typer(help="Check, render and compare joint-use notices.", no_args_is_help=True)


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

    policies = policies_of(policy)
    schemas = schema_dir_of(schemas)
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
    policies = policies_of(policy)
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
