"""``jointuse incident``: leak incidents (APPI Art. 26) from open to close, and the report's draft."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streams.cli.exits import Format, Lang, fail
from streams.cli.infra_commands import Bootstrap, Prefix, settings_from_options
from streams.errors import ClusterError, Exit, JointUseError
from streams.policy.pseudonym import SubjectKeys
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.incidents.store import Opened

incident_app = typer.Typer(
    help="Leak incidents (APPI Art. 26): open, list, report to the PPC, file, close.", no_args_is_help=True
)

By = Annotated[
    str | None, typer.Option("--by", help="Who acts, for the record (default: the SASL user, else 'operator').")
]


def _time(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} must be an ISO 8601 time with a UTC offset, e.g. 2026-11-30T09:00:00+09:00")
    if moment.tzinfo is None:
        fail(f"{option} must carry a UTC offset, e.g. 2026-11-30T09:00:00+09:00")
    return moment


def _subjects_file(path: Path, keys: SubjectKeys) -> dict[str, str]:
    """``<source>:<customer id>`` per line → {pseudonym under every key generation: that line}."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError):
        fail(f"cannot read {path} as UTF-8 text")
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#"):
            continue
        source, sep, customer_id = line.partition(":")
        if not sep or not source or not customer_id:
            fail(f"{path}:{number}: each line must be <source>:<customer id>")
        for subject in keys.lookup_subjects(source, customer_id):
            found[subject] = line
    return found


def _actor(by: str | None, settings: Settings) -> str:
    return by or settings.sasl_username or "operator"


@incident_app.command("open")
def incident_open(
    reason: Annotated[str, typer.Option("--reason", help="What happened, in a sentence (no personal data).")],
    recipient: Annotated[
        str | None, typer.Option("--recipient", help="Only what was delivered to this company.")
    ] = None,
    from_time: Annotated[
        str | None, typer.Option("--from-time", help="Deliveries processed from this time (ISO 8601 with offset).")
    ] = None,
    to_time: Annotated[str | None, typer.Option("--to-time", help="...up to this time (exclusive).")] = None,
    subjects: Annotated[
        Path | None,
        typer.Option("--subjects", help="Only these subjects: a file of <source>:<customer id> lines."),
    ] = None,
    financial_harm: Annotated[
        bool, typer.Option("--financial-harm", help="The data could be misused for financial harm (Rules Art. 7 (ii)).")
    ] = False,
    wrongful_purpose: Annotated[
        bool, typer.Option("--wrongful-purpose", help="It may have been done with a wrongful purpose (Art. 7 (iii)).")
    ] = False,
    no_keys: Annotated[
        bool,
        typer.Option(
            "--no-customer-keys",
            help="Do not read the ingest topics for the customers' keys (the auditor's principal cannot).",
        ),
    ] = False,
    by: By = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Open an incident for what the audit says was delivered, e.g. after a recipient's systems were
    breached. Writes the incident and one notice per affected subject to its source company's
    notices topic (the customer's key and who received what classes, never a value), in one
    transaction. Prints the incident id. The leak canary opens its incidents by itself.

    \b
    Examples:
      jointuse incident open --reason "jcom-insurance reported a breach of its CRM" \\
          --recipient jcom-insurance --from-time 2026-11-01T00:00:00+09:00 --to-time 2026-11-30T00:00:00+09:00
      jointuse incident open --reason "mis-sent export" --subjects affected.txt --financial-harm

    Exit codes: 0 opened; 1 nothing in the audit matches (nothing written); 2 bad arguments;
    3 a Kafka error (nothing written).
    """
    from streams.incidents.store import open_incident

    settings = settings_from_options(bootstrap, None, prefix)
    window = (_time(from_time, "--from-time"), _time(to_time, "--to-time"))
    chosen = _chosen_subjects(subjects, settings)
    try:
        opened = open_incident(
            settings,
            by=_actor(by, settings),
            reason=reason,
            recipient=recipient,
            from_time=window[0],
            to_time=window[1],
            subjects=chosen,
            financial_harm=financial_harm,
            wrongful_purpose=wrongful_purpose,
            resolve_keys=not no_keys,
            on_progress=_audit_progress,
        )
    except ClusterError as exc:
        fail(exc, Exit.SERVICE)
    except JointUseError as exc:
        fail(exc)
    if opened is None:
        fail("nothing in the audit matches: no incident opened", Exit.PROBLEMS)
    _print_opened(opened)


def _chosen_subjects(subjects: Path | None, settings: Settings) -> dict[str, str] | None:
    """The subjects ``--subjects`` names, by their pseudonyms; None for every subject."""
    if subjects is None:
        return None
    try:
        keys = settings.subject_keys()
    except JointUseError as exc:
        fail(exc)
    return _subjects_file(subjects, keys)


def _audit_progress(done: int) -> None:
    if done and done % 50_000 < 1000:
        typer.echo(f"[incident] audit events read: {done:,}", err=True)


def _print_opened(opened: Opened) -> None:
    """A line on what the incident covers, then its id alone (for scripts)."""
    exposure = opened.exposure
    typer.echo(
        f"opened {opened.incident_id}: {len(exposure.subjects):,} subjects, {exposure.deliveries:,} deliveries to "
        f"{', '.join(exposure.recipients)}; {opened.notices:,} notices written"
        + (f" ({opened.without_key:,} without a customer key)" if opened.without_key else "")
    )
    typer.echo(opened.incident_id)


@incident_app.command("list")
def incident_list(
    all_incidents: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TABLE,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """The incidents, open ones first: subjects, triggers, the next report due and the days left.

    \b
    Examples:
      jointuse incident list
      jointuse incident list --all --format json

    Exit codes: 0 listed; 3 a Kafka error.
    """
    from streams.incidents.core.breach import days_left
    from streams.incidents.store import read_book

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        book = read_book(settings)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    for incident in sorted(book.incidents.values(), key=lambda i: (not i.is_open, i.aware_at_ms)):
        if not all_incidents and not incident.is_open:
            continue
        facts = incident.facts()
        due = incident.next_deadline()
        rows.append(
            {
                "incident_id": incident.incident_id,
                "open": incident.is_open,
                "opened_by": incident.opened_by,
                "aware_at": facts.aware_at.isoformat(),
                "subjects": facts.subjects,
                "deliveries": facts.deliveries,
                "blocked": facts.blocked,
                "triggers": sorted(t.value for t in facts.assessment.triggers),
                "next_report": None if due is None else due[0],
                "due": None if due is None else due[1].isoformat(),
                "days_left": None if due is None else days_left(due[1], now),
            }
        )
    if output is Format.JSON:
        sys.stdout.write(json.dumps({"incidents": rows, "invalid_events": book.invalid}, ensure_ascii=False) + "\n")
        return
    if not rows:
        typer.echo("no open incidents" if not all_incidents else "no incidents")
    for row in rows:
        when = (
            f"{row['next_report']} report due {row['due']} ({row['days_left']} days)" if row["due"] else "no report due"
        )
        state = "open" if row["open"] else "closed"
        typer.echo(
            f"{row['incident_id']}  {state}  {row['subjects']:,} subjects  "
            f"triggers: {', '.join(row['triggers']) or 'none'}  {when}"
        )
    if book.invalid:
        typer.echo(f"({book.invalid} invalid events on the topic were skipped)", err=True)


@incident_app.command("report")
def incident_report(
    incident_id: Annotated[str, typer.Argument(help="The incident (see `jointuse incident list`).")],
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the draft.")] = Lang.JA,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Draft the report to the PPC (施行規則第8条): every required heading, the facts the pipeline
    knows filled in, and what a person must write marked 【要記入】 / [TO BE WRITTEN].

    \b
    Examples:
      jointuse incident report canary-20261130-2025-04 > report.md
      jointuse incident report op-20261130-1a2b3c4d --lang en

    Exit codes: 0 drafted; 1 no such incident; 3 a Kafka error.
    """
    from dataclasses import replace

    from streams.incidents.core.breach import draft_report
    from streams.incidents.store import read_book
    from streams.policy.loader import load_policies

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        book = read_book(settings)
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    incident = book.incidents.get(incident_id)
    if incident is None:
        fail(f"no incident {incident_id}", Exit.PROBLEMS)
    names = {i.id: (i.id, i.ja, i.en) for p in load_policies(settings.policy_path).versions for i in p.items}
    facts = incident.facts()
    facts = replace(facts, items=tuple(names.get(i, (i, i, i)) for i, _, _ in facts.items))
    typer.echo(draft_report(facts, lang.value))


@incident_app.command("finding")
def incident_finding(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    financial_harm: Annotated[bool, typer.Option("--financial-harm", help="A risk of financial harm.")] = False,
    wrongful_purpose: Annotated[
        bool, typer.Option("--wrongful-purpose", help="A wrongful purpose (the final report is due in 60 days).")
    ] = False,
    by: By = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Record a finding made after the incident was opened; it can make the incident reportable.

    Example: jointuse incident finding canary-20261130-2025-04 --wrongful-purpose
    Exit codes: 0 recorded; 1 no such incident; 2 no finding given; 3 a Kafka error.
    """
    from streams.incidents.core.book import finding_event

    if not (financial_harm or wrongful_purpose):
        fail("give --financial-harm and/or --wrongful-purpose")
    _append(
        incident_id,
        bootstrap,
        prefix,
        lambda actor, now: finding_event(
            incident_id, by=actor, at=now, financial_harm=financial_harm, wrongful_purpose=wrongful_purpose
        ),
        by,
    )
    typer.echo(f"recorded a finding on {incident_id}")


@incident_app.command("filed")
def incident_filed(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    report: Annotated[str, typer.Option("--report", help="Which report was sent to the PPC: preliminary or final.")],
    by: By = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Record that a report was sent to the PPC: its deadline no longer counts down.

    Example: jointuse incident filed canary-20261130-2025-04 --report preliminary
    Exit codes: 0 recorded; 1 no such incident; 2 bad arguments; 3 a Kafka error.
    """
    from streams.incidents.core.book import REPORTS, filed_event

    if report not in REPORTS:
        fail("--report must be preliminary or final")
    _append(
        incident_id, bootstrap, prefix, lambda actor, now: filed_event(incident_id, by=actor, at=now, report=report), by
    )
    typer.echo(f"recorded the {report} report of {incident_id}")


@incident_app.command("close")
def incident_close(
    incident_id: Annotated[str, typer.Argument(help="The incident.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the response is over (no personal data).")],
    by: By = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Close an incident: it leaves `incident list` and the open-incident metric.

    Example: jointuse incident close canary-20261130-2025-04 --reason "fault fixed, final report filed"
    Exit codes: 0 closed; 1 no such incident; 3 a Kafka error.
    """
    from streams.incidents.core.book import closed_event

    _append(
        incident_id,
        bootstrap,
        prefix,
        lambda actor, now: closed_event(incident_id, by=actor, at=now, reason=reason),
        by,
    )
    typer.echo(f"closed {incident_id}")


def _append(
    incident_id: str,
    bootstrap: str | None,
    prefix: str | None,
    event: Callable[[str, dt.datetime], bytes],
    by: str | None,
) -> None:
    from streams.incidents.store import append_event, read_book

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        if incident_id not in read_book(settings).incidents:
            fail(f"no incident {incident_id}", Exit.PROBLEMS)
        append_event(settings, incident_id, event(_actor(by, settings), dt.datetime.now(dt.UTC)))
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
