"""``jointuse access plan | apply``: ACLs and SCRAM credentials derived from the policy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.exits import fail
from streams.errors import Exit, JointUseError
from streams.kafka.acl_plan import AccessPlan, diff_access, plan_access
from streams.policy.loader import load_policies
from streams.settings import Settings, load_settings
from streams.topology import Topology

access_app = typer.Typer(help="Kafka ACLs and SCRAM credentials derived from the policy.", no_args_is_help=True)

PasswordsDir = Annotated[
    Path | None,
    typer.Option("--passwords-dir", help="Directory of <principal>.password files (else JOINTUSE_PASSWORD_<ID>)."),
]


def env_name(principal: str) -> str:
    return "JOINTUSE_PASSWORD_" + principal.upper().replace("-", "_")


def passwords_for(plan: AccessPlan, directory: Path | None) -> dict[str, str]:
    """Passwords from files or the environment; principals without one keep their credential."""
    found: dict[str, str] = {}
    for principal in plan.principals:
        if directory is not None and (directory / f"{principal}.password").is_file():
            found[principal] = (directory / f"{principal}.password").read_text(encoding="utf-8").strip()
        elif os.environ.get(env_name(principal)):
            found[principal] = os.environ[env_name(principal)]
    return found


def _context(prefix: str | None) -> tuple[Settings, Topology, AccessPlan]:
    settings = load_settings(topic_prefix=prefix)
    topology = Topology(settings.topic_prefix)
    return settings, topology, plan_access(load_policies(settings.policy_path).latest, topology)


@access_app.command("plan")
def access_plan(prefix: Annotated[str | None, typer.Option("--prefix")] = None) -> None:
    """Print the ACL changes `apply` would make (exit 1 when there are any).

    Example: jointuse access plan
    """
    from streams.kafka.acls import current_acls
    from streams.kafka.company_client import ensure_reachable

    settings, topology, plan = _context(prefix)
    try:
        ensure_reachable(settings)
        diff = diff_access(plan, current_acls(settings.kafka_common()), topology)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    for acl in diff.to_add:
        typer.echo(f"+ {acl}")
    for acl in diff.to_remove:
        typer.echo(f"- {acl}")
    typer.echo(f"{len(diff.to_add)} to add, {len(diff.to_remove)} to remove")
    if not diff.empty:
        raise typer.Exit(Exit.PROBLEMS)


@access_app.command("apply")
def access_apply(
    prefix: Annotated[str | None, typer.Option("--prefix")] = None, passwords_dir: PasswordsDir = None
) -> None:
    """Make the cluster's ACLs match the policy (idempotent; stale ACLs in this prefix are removed) and
    create or rotate SCRAM-SHA-512 credentials for the principals given a password.

    Example: JOINTUSE_PASSWORD_JCOM=... jointuse access apply
    """
    from streams.kafka.acls import apply_acls, current_acls, upsert_scram
    from streams.kafka.company_client import ensure_reachable

    settings, topology, plan = _context(prefix)
    try:
        passwords = passwords_for(plan, passwords_dir)
        ensure_reachable(settings)
        upsert_scram(settings.kafka_common(), passwords)
        diff = diff_access(plan, current_acls(settings.kafka_common()), topology)
        apply_acls(settings.kafka_common(), diff.to_add, diff.to_remove)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    kept = [p for p in plan.principals if p not in passwords]
    typer.echo(
        f"credentials set for {len(passwords)} principal(s)" + (f"; unchanged: {', '.join(kept)}" if kept else "")
    )
    typer.echo(f"ACLs: {len(diff.to_add)} added, {len(diff.to_remove)} removed")
