"""Commands for data subject rights and retention."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated

import typer
from pydantic import ValidationError

from streams.cli.exits import Format, fail
from streams.cli.infra_commands import Bootstrap, Prefix, settings_from_options
from streams.cli.options import FaustLogLevel, FaustLogLevelOption, joint_user
from streams.errors import Exit, JointUseError
from streams.rights.core.rules import FiledBy, Requester
from streams.settings import WEB_ADDRESS

top_level = typer.Typer()
rights_app = typer.Typer(help="Stop-of-use, erasure and disclosure reports (APPI Arts. 33-35).", no_args_is_help=True)
retention_app = typer.Typer(help="Erase deliveries whose items passed their retention.", no_args_is_help=True)


VerifiedBy = Annotated[
    str,
    typer.Option(
        "--verified-by",
        help="How the requester's identity was verified (e.g. 運転免許証); APPI Art. 37 asks for it.",
    ),
]
FiledByOption = Annotated[
    FiledBy,
    typer.Option("--filed-by", help="Who filed it: the subject, a legal representative or an authorised agent."),
]
Authority = Annotated[
    str,
    typer.Option("--authority", help="A representative's or agent's proof of authority (e.g. 戸籍謄本, 委任状 ref.)."),
]
Minor = Annotated[bool, typer.Option("--minor", help="The subject is a minor: a legal representative files.")]


def _requester(filed_by: FiledBy, verified_by: str, authority: str, minor: bool) -> Requester:
    """Who asks, checked before any network call: one line naming the option and the rule."""
    if not verified_by.strip():
        fail("--verified-by: say how the requester's identity was verified")
    try:
        return Requester(
            filed_by=filed_by, identity_verified_by=verified_by, authority=authority, subject_is_minor=minor
        )
    except ValidationError as exc:  # the rule, never a value
        rule = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        fail(f"--filed-by / --authority / --minor: {rule}")


@rights_app.command("request")
def rights_request(
    customer_id: Annotated[str, typer.Argument(help="The subject's customer id at the source company.")],
    source: Annotated[
        str, typer.Option("--source", help="The company whose customer the subject is.", callback=joint_user)
    ],
    stop: Annotated[bool, typer.Option("--stop", help="Stop of use: withhold every later record.")] = False,
    erase: Annotated[
        bool, typer.Option("--erase", help="Erasure: stop, tombstone every delivery, notify recipients.")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="The subject withdrew the request: share again.")] = False,
    correct: Annotated[
        bool,
        typer.Option(
            "--correct", help="Correction (訂正): the source republished a corrected record; the report tracks it."
        ),
    ] = False,
    verified_by: VerifiedBy = "",
    filed_by: FiledByOption = FiledBy.SUBJECT,
    authority: Authority = "",
    minor: Minor = False,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """File a request on the rights topic; the workers apply it within seconds. A correction goes to
    the corrections topic instead (on the rights topic, compacted per subject, it would replace a
    stop); the disclosure report then shows which recipients the corrected record has reached.

    \b
    Every request says who filed it and how their identity was verified (APPI Art. 37(3)): the
    person, a legal representative (a minor's must be) or an authorised agent, with its authority.

    \b
    Examples:
      jointuse rights request C0000042 --source jcom --stop --verified-by 運転免許証
      jointuse rights request C0000042 --source jcom --erase --verified-by マイナンバーカード
      jointuse rights request C0000042 --source jcom --resume --verified-by 運転免許証
      jointuse rights request C0000042 --source jcom --stop --minor --filed-by legal_representative \\
        --authority 戸籍謄本 --verified-by 運転免許証
      jointuse rights request C0000042 --source jcom --correct --verified-by 運転免許証
    """
    from streams.rights.core.rules import RightsAction
    from streams.rights.requests import file_correction, file_request

    chosen = [
        a for a, on in ((RightsAction.STOP, stop), (RightsAction.ERASE, erase), (RightsAction.RESUME, resume)) if on
    ]
    if len(chosen) + correct != 1:
        fail("give exactly one of --stop, --erase, --resume, --correct")
    requester = _requester(filed_by, verified_by, authority, minor)
    settings = settings_from_options(bootstrap, None, prefix)
    from streams.kafka.company_client import ensure_reachable

    settings.subject_keys()  # a missing key is the user's to fix (exit 2), whatever the cluster says
    ensure_reachable(settings)  # else a producer waits out its delivery timeout and blames the message
    if correct:
        try:
            request_id = file_correction(settings, customer_id, source)
        except JointUseError as exc:
            fail(exc, Exit.SERVICE)
        typer.echo(f"filed correction {request_id} for {source}:<customer>")
        return
    try:
        request = file_request(settings, chosen[0], customer_id, source, requester=requester)
    except ValueError as exc:  # pydantic: a bad company id or customer id
        fail(f"invalid request ({str(exc).splitlines()[0]})")
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    typer.echo(f"filed {request.action.value} request {request.request_id} for {request.source}:<customer>")


@rights_app.command("report")
def rights_report(
    customer_id: Annotated[str, typer.Argument(help="The subject's customer id.")],
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Source company (repeatable; default: every joint user).", callback=joint_user),
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TABLE,
    from_audit: Annotated[
        bool,
        typer.Option("--from-audit", help="Read the whole audit topic instead of the subject index (slow; a check)."),
    ] = False,
    index_url: Annotated[
        str | None, typer.Option("--index-url", help="A subject-index worker (default: JOINTUSE_INDEX_URL).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", help="Wait up to this many seconds for the index to apply the audit events so far."),
    ] = 0.0,
    verified_by: VerifiedBy = "",
    filed_by: FiledByOption = FiledBy.SUBJECT,
    authority: Authority = "",
    minor: Minor = False,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Disclosure report: which companies received which items about a subject, under which notice
    version, for which purposes; first and last delivery, how many, and the last input.

    Read from the subject index (`jointuse index`), which says when it is behind the audit topic.
    Exit 3 when the index (or, with --from-audit, the cluster) does not answer, or with --wait has
    not caught up by then.

    \b
    Every channel the subject's data went through is listed with its legal basis (Art. 33(5)), and
    the report says who asked for it and how their identity was verified (Art. 37(3)).

    \b
    Examples:
      jointuse rights report C0000042 --source jcom --verified-by 運転免許証
      jointuse rights report C0000042 --format json --verified-by 運転免許証
      jointuse rights report C0000042 --wait 10 --verified-by 運転免許証
      jointuse rights report C0000042 --from-audit --verified-by 運転免許証 \\
        --filed-by authorised_agent --authority 委任状-2026-17
    """
    from streams.policy.loader import load_policies
    from streams.rights.report import report_from_audit, report_from_index

    requester = _requester(filed_by, verified_by, authority, minor)
    settings = settings_from_options(bootstrap, None, prefix)
    if index_url:
        settings = settings.model_copy(update={"index_url": index_url})
    if re.fullmatch(WEB_ADDRESS, settings.index_url) is None:
        fail("--index-url / JOINTUSE_INDEX_URL: must be an http:// or https:// address")
    sources = source or sorted({u.id for p in load_policies(settings.policy_path).versions for u in p.joint_users})
    try:
        keys = settings.subject_keys()
    except JointUseError as exc:
        fail(exc, Exit.USAGE)
    subjects = frozenset().union(*(keys.lookup_subjects(s, customer_id) for s in sources))
    try:
        report = (
            report_from_audit(settings, subjects)
            if from_audit
            else report_from_index(settings, subjects, wait_seconds=wait)
        )
    except JointUseError as exc:
        fail(exc, Exit.SERVICE)
    if output == "json":
        asked = requester.model_dump(mode="json")
        typer.echo(
            json.dumps({"sources": sources, "requester": asked, **report.to_json()}, indent=2, ensure_ascii=False)
        )
        return
    typer.echo(requester.describe())
    for line in report.table_lines():
        typer.echo(line)


@top_level.command("index")
def index_command(
    log_level: FaustLogLevelOption = FaustLogLevel.WARN,
    port: Annotated[
        int | None, typer.Option("--port", help="Web port for lookups (default JOINTUSE_INDEX_PORT, 9410).")
    ] = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Run a subject-index worker: folds the audit topic into one row per subject and answers
    lookups on its web port (any worker forwards a lookup to the owner of the subject's partition).
    Runs until SIGTERM/SIGINT (exit 0); exit 2 when it cannot start for its settings (a certificate,
    a token file); 3 when no broker answers at start-up; faust's 1 when it fails otherwise (a port
    in use).

    \b
    Examples:
      jointuse index
      jointuse index --port 9411        # a second worker on the same host
      curl --cacert .local/tls/ca.pem -H "Authorization: Bearer $TOKEN" https://127.0.0.1:9410/index/status
    """
    from streams.cli.launch import run_faust_app
    from streams.rights.index_app import build_index_app

    settings = settings_from_options(bootstrap, None, prefix)
    if port is not None:
        address = f"{settings.index_scheme()}://{settings.index_host}:{port}"
        settings = settings.model_copy(update={"index_port": port, "index_url": address})
    run_faust_app("the subject index", settings, lambda: build_index_app(settings), log_level=log_level)


@retention_app.command("run")
def retention_run(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Judge expiry as of this ISO time (default: now).")
    ] = None,
    every: Annotated[float | None, typer.Option("--every", help="Run again every N seconds until Ctrl-C.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be tombstoned; write nothing.")] = False,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Tombstone every subject whose latest delivery holds an item past its retention, and notify
    the recipient. Idempotent.

    \b
    Examples:
      jointuse retention run
      jointuse retention run --every 3600
      jointuse retention run --as-of 2031-06-01T00:00:00+09:00 --dry-run
    """
    import time

    from rich.progress import Progress, TaskID, TextColumn, TimeElapsedColumn

    from streams.policy.loader import load_policies
    from streams.rights.retention import run_retention

    settings = settings_from_options(bootstrap, None, prefix)
    try:
        moment = dt.datetime.fromisoformat(as_of) if as_of else None
    except ValueError:
        fail("--as-of must be an ISO 8601 time with an offset")
    if moment is not None and moment.tzinfo is None:
        fail("--as-of must carry a UTC offset")
    policy = load_policies(settings.policy_path).latest
    while True:
        with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("scanning")

            def show(topic: str, seen: int, bar: Progress = bar, task: TaskID = task) -> None:
                bar.update(task, description=f"scanning {topic}: {seen}")

            try:
                result = run_retention(
                    settings,
                    policy,
                    as_of=moment or dt.datetime.now(dt.UTC),
                    dry_run=dry_run,
                    on_progress=show,
                )
            except JointUseError as exc:
                fail(exc, Exit.SERVICE)
        verb = "would tombstone" if dry_run else "tombstoned"
        typer.echo(f"scanned {result.scanned} messages, {result.subjects} subjects; {verb} {result.total}")
        for topic, count in sorted(result.tombstoned.items()):
            typer.echo(f"  {topic}: {count}")
        if every is None:
            return
        time.sleep(every)
