"""``jointuse audit``: verify the tamper-evident audit chains, print the key that verifies them."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from streams.cli.exits import fail
from streams.errors import Exit, JointUseError
from streams.settings import Settings, load_settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from streams.audit.core.chain import ChainVerifier

audit_app = typer.Typer(help="The tamper-evident audit: verify its chains.", no_args_is_help=True)


@audit_app.command("verify")
def verify_command(
    topic: Annotated[
        str | None, typer.Option("--topic", help="Audit topic to check (default: the deployment's).")
    ] = None,
    checkpoints_topic: Annotated[
        str | None, typer.Option("--checkpoints-topic", help="Its checkpoints (default: the deployment's).")
    ] = None,
    from_time: Annotated[
        str | None, typer.Option("--from-time", help="Check events from this time (ISO 8601, with offset).")
    ] = None,
    to_time: Annotated[str | None, typer.Option("--to-time", help="...up to this time (exclusive).")] = None,
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", help="Checkpoint key, 64 hex (default: derived from JOINTUSE_AUDIT_KEY_FILE)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object instead of a line.")] = False,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Topic name prefix (JOINTUSE_TOPIC_PREFIX).")] = None,
) -> None:
    """Check every audit event against its writer's hash chain and the signed checkpoints.

    Names the first partition and offset where an event was altered, removed, moved or inserted,
    or where a checkpointed head is missing (events removed from the end).

    Examples:
      jointuse audit verify
      jointuse audit verify --from-time 2026-11-01T00:00:00+09:00 --to-time 2026-12-01T00:00:00+09:00 --json
      jointuse audit verify --topic copy-of-audit --public-key 3b6a...

    Exit codes: 0 the chains hold; 1 a violation (the first one is printed); 2 bad arguments or no
    key; 3 a Kafka error.
    """
    from streams.audit.verify import verify_topic
    from streams.topology import Topology

    settings = load_settings(topic_prefix=prefix)
    topology = Topology(settings.topic_prefix)
    key = _checkpoint_key(public_key, settings)
    since, until = _window(from_time, to_time)
    try:
        verifier = verify_topic(
            settings.kafka_common(),
            audit_topic=topic or topology.audit,
            checkpoints_topic=checkpoints_topic or topology.audit_checkpoints,
            key=key,
            group_id=f"{settings.topic_prefix}.auditor.verify",
            from_time=since,
            to_time=until,
        )
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    _print_verdict(verifier, json_output)
    raise typer.Exit(int(Exit.OK if verifier.first is None else Exit.PROBLEMS))


def _checkpoint_key(public_key: str | None, settings: Settings) -> Ed25519PublicKey:
    """The key ``--public-key`` gives, else the public half of the deployment's signing key."""
    from streams.audit.sealer import public_key as parse_public_key
    from streams.audit.sealer import signing_key

    try:
        if public_key is not None:
            return parse_public_key(public_key)
        if settings.audit_key_file is not None:
            return signing_key(settings.audit_key_file).public_key()
    except JointUseError as exc:
        fail(exc)
    fail("give --public-key or set JOINTUSE_AUDIT_KEY_FILE")


def _window(from_time: str | None, to_time: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    try:
        since, until = (dt.datetime.fromisoformat(t) if t else None for t in (from_time, to_time))
    except ValueError:
        fail("--from-time / --to-time must be ISO 8601 times with a UTC offset")
    return since, until


def _print_verdict(verifier: ChainVerifier, json_output: bool) -> None:
    """The first violation, if any, as one line or one JSON object."""
    first = verifier.first
    if json_output:
        body = {
            "ok": first is None,
            "events": verifier.events,
            "checkpoints_matched": verifier.checkpoints_matched,
            "violations": len(verifier.violations),
            "first": None
            if first is None
            else {
                "partition": first.partition,
                "offset": first.offset,
                "rule": first.rule.value,
                "detail": first.detail,
            },
        }
        sys.stdout.write(json.dumps(body) + "\n")
    elif first is None:
        typer.echo(f"audit chains hold: {verifier.events} events, {verifier.checkpoints_matched} checkpoints matched")
    else:
        typer.echo(f"audit chain broken at {first} ({len(verifier.violations)} violation(s) in all)")


@audit_app.command("public-key")
def public_key_command() -> None:
    """Print the public key that verifies the checkpoints (give it to auditors for --public-key).

    Example: jointuse audit public-key
    Exit codes: 0 printed; 2 no JOINTUSE_AUDIT_KEY_FILE or not a key.
    """
    from streams.audit.sealer import public_hex, signing_key

    settings = load_settings()
    if settings.audit_key_file is None:
        fail("set JOINTUSE_AUDIT_KEY_FILE (infra/local.sh env sets the local one)")
    try:
        typer.echo(public_hex(signing_key(settings.audit_key_file)))
    except JointUseError as exc:
        fail(exc)
