"""`jointuse provide`: answer one case-by-case request of the insurer's notice (section 5)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.exits import Format, fail
from streams.cli.infra_commands import Bootstrap, Prefix, RegistryUrl, settings_from_options
from streams.errors import Exit, JointUseError

top_level = typer.Typer()


@top_level.command("provide")
def provide_command(
    channel: Annotated[
        str, typer.Option("--channel", help="A case-by-case channel of the policy (handling.channels).")
    ],
    basis: Annotated[str, typer.Option("--basis", help="The legal basis the request rests on; must be the channel's.")],
    subject: Annotated[str, typer.Option("--subject", help="The subject: <provider>:<customer_id>.")],
    request: Annotated[
        str, typer.Option("--request", help="The reference of the request answered (court order, letter, ...).")
    ] = "",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write what is provided to this JSON file (default: stdout).", dir_okay=False),
    ] = None,
    bootstrap: Bootstrap = None,
    registry: RegistryUrl = None,
    prefix: Prefix = None,
) -> None:
    """Provide one subject's record to a case-by-case channel (a lawyer, an authority, a bank) under
    a request's reference, once. The same engine and leak canary as every channel decide what the
    recipient gets of the subject's latest record; the provision record (where the basis needs one)
    and an audit event naming the request are written in one transaction. A request is answered
    once: asked again, it is refused.

    Exit codes: 0 provided; 1 refused (the policy withholds it, or the request was answered
    before); 2 a bad option (unknown or standing channel, another basis, no request reference);
    3 Kafka or the registry did not answer.

    Example: jointuse provide --channel counsel --basis professional --request BAR-2026-0042
    --subject jcom-insurance:C000123 --out answer.json
    """
    from streams.provision.case_by_case import Refused, Request, provide

    settings = settings_from_options(bootstrap, registry, prefix)
    wanted = Request(channel=channel, basis=basis, reference=request, subject_key=subject)
    try:
        answer = provide(settings, wanted, on_progress=_progress)
    except Refused as exc:
        fail(str(exc), Exit.PROBLEMS)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    body = json.dumps(
        {
            "channel": answer.channel,
            "request": answer.reference,
            "purposes": list(answer.delivery.purposes),
            "items": list(answer.delivery.items),
            "fields": list(answer.delivery.fields),
            "record": answer.record,
        },
        ensure_ascii=False,
        indent=2,
    )
    if out is None:
        typer.echo(body)
    else:
        out.write_text(body + "\n", encoding="utf-8")
    typer.echo(
        f"provided to {answer.channel} under request {answer.reference} "
        f"(input {answer.input_topic}[{answer.input_partition}]@{answer.input_offset}); recorded",
        err=True,
    )


def _progress(step: str, seen: int) -> None:
    if seen and seen % 10_000 == 0:
        print(f"reading {step}: {seen:,} records", file=sys.stderr, flush=True)


@top_level.command("supervision")
def supervision_command(
    channel: Annotated[
        str, typer.Option("--channel", help="An entrustee of the policy (a channel under entrustment).")
    ],
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TABLE,
    bootstrap: Bootstrap = None,
    registry: RegistryUrl = None,
    prefix: Prefix = None,
) -> None:
    """The supervision log of one entrustee (APPI Art. 25): what it received, when, under which
    contract and task; the workers write an entry with each provision. No value of a record.

    Exit codes: 0 shown; 2 not an entrustee of the policy; 3 Kafka did not answer.

    Example: jointuse supervision --channel example-claims-investigator --format json
    """
    from streams.provision.case_by_case import supervision_log

    settings = settings_from_options(bootstrap, registry, prefix)
    try:
        entries = supervision_log(settings, channel, on_progress=_progress)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    if output == Format.JSON:
        typer.echo(json.dumps(entries, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{len(entries)} provision(s) to {channel}")
    for entry in entries:
        fields = ",".join((*entry.get("items", ()), *entry.get("fields", ())))
        typer.echo(
            f"{entry.get('provided_at', '-')} {entry.get('subject', '-')[:16]} {entry.get('contract', '-')} "
            f"{','.join(entry.get('purposes', ()))} {fields}"
        )
