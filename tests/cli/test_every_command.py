"""Every command and subcommand, each with arguments that would otherwise run it, against the
mistakes a user makes with the environment: a bad setting, no broker or registry reachable. Each
ends with the exit code of docs/commands.md and one line naming the problem: never a traceback, never a value
(a setting may be a secret). The table must name every command the CLI has."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer

from streams.cli.main import app
from tests.cli.helpers import run_offline

RECORDS = "{records}"  # replaced by a file of one record
OUT = "{out}"  # replaced by a directory of the test's own
POLICY = "policies/jcom-group.yaml"
COMMANDS: dict[str, list[str]] = {
    "generate": ["generate", "--count", "1"],
    "produce": ["produce", RECORDS, "--as", "jcom"],
    "consume": ["consume", "--as", "jcom"],
    "worker": ["worker"],
    "lag": ["lag"],
    "demo": ["demo"],
    "index": ["index"],
    "replay": ["replay", "--topic", "x", "--dry-run"],
    "catalog": ["catalog", "--out", OUT],
    "filter": ["filter", "--source", "jcom"],
    "policy check": ["policy", "check"],
    "policy notice": ["policy", "notice"],
    "policy render": ["policy", "render"],
    "policy diff": ["policy", "diff", POLICY, POLICY],
    "schemas check": ["schemas", "check"],
    "schemas publish": ["schemas", "publish"],
    "access plan": ["access", "plan"],
    "access apply": ["access", "apply"],
    "audit verify": ["audit", "verify"],
    "audit public-key": ["audit", "public-key"],
    "incident open": ["incident", "open", "--reason", "a test"],
    "incident list": ["incident", "list"],
    "incident report": ["incident", "report", "i1"],
    "incident finding": ["incident", "finding", "i1", "--financial-harm"],
    "incident filed": ["incident", "filed", "i1", "--report", "preliminary"],
    "incident close": ["incident", "close", "i1", "--reason", "a test"],
    "stats run": ["stats", "run"],
    "stats show": ["stats", "show", "t"],
    "stats preview": ["stats", "preview", RECORDS, "--window", "2026-01-01"],
    "topics create": ["topics", "create"],
    "topics list": ["topics", "list"],
    "topics describe": ["topics", "describe"],
    "topics check": ["topics", "check"],
    "rights request": ["rights", "request", "c1", "--source", "jcom", "--stop", "--verified-by", "x"],
    "rights report": ["rights", "report", "c1", "--verified-by", "x"],
    "retention run": ["retention", "run"],
    "supervision": ["supervision", "--channel", "x"],
    "provide": [
        "provide",
        "--channel",
        "x",
        "--basis",
        "professional",
        "--subject",
        "jcom-insurance:c1",
        "--request",
        "R1",
    ],
    "dq run": ["dq", "run", "--topic", "jointuse.ingest.jcom.customer.v1"],
    "dq suites": ["dq", "suites"],
}
# Commands that read no setting: they work on their arguments alone.
NO_SETTINGS = {"generate", "policy diff"}
# Commands that need no broker, registry or subject index (the rest exit 3 without them), and
# provide and supervision, whose recipient the shipped notice does not name (it names no channel of
# the insurer's, abroad or at home): refused first, exit 2.
OFFLINE = {
    "generate": 0,
    "catalog": 0,
    "filter": 0,
    "policy check": 0,
    "policy notice": 0,
    "policy render": 0,
    "policy diff": 1,  # the same file twice: "the new version does not take effect after the old one"
    "schemas check": 0,
    "audit public-key": 0,
    "stats preview": 0,
    "dq suites": 0,
    "provide": 2,
    "supervision": 2,
}
UNREACHABLE = {
    "JOINTUSE_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "JOINTUSE_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1",
    "JOINTUSE_INDEX_URL": "http://127.0.0.1:1",
}


def _commands(command: typer.main.TyperGroup | object, path: tuple[str, ...] = ()) -> set[str]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return {" ".join(path)}
    return {
        name
        for key, sub in subcommands.items()
        if not getattr(sub, "hidden", False)  # an earlier name kept for old scripts
        for name in _commands(sub, (*path, key))
    }


def test_the_table_names_every_command() -> None:
    assert _commands(typer.main.get_command(app)) == set(COMMANDS)


def test_every_command_is_added_from_its_module_one_way() -> None:
    """``jointuse`` declares no command itself: each comes from a command module's Typer, added
    to it as a named group or, unnamed, as that module's top-level commands."""
    assert not app.registered_commands
    assert all(group.typer_instance is not None for group in app.registered_groups)


def _args(name: str, tmp_path: Path) -> list[str]:
    records = tmp_path / "records.jsonl"
    records.write_text('{"customer_id": "c1"}\n', encoding="utf-8")
    given = {RECORDS: str(records), OUT: str(tmp_path / "out" / name.replace(" ", "-"))}
    return [given.get(arg, arg) for arg in COMMANDS[name]]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_bad_setting_stops_every_command_with_one_line_and_exit_2(name: str, tmp_path: Path) -> None:
    done = run_offline(
        _args(name, tmp_path),
        env={"JOINTUSE_METRICS_PORT": "SECRET-abc", "JOINTUSE_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        timeout=60,
    )
    assert "Traceback" not in done.stderr and "SECRET-abc" not in done.stderr + done.stdout
    if name in NO_SETTINGS:
        assert done.returncode in (0, 1), done.stderr  # 1: policy diff's "the dates are inconsistent"
        return
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("jointuse: JOINTUSE_METRICS_PORT: ") and "integer" in lines[0]


def test_no_broker_registry_or_index_stops_every_command_that_needs_one_with_exit_3(tmp_path: Path) -> None:
    """Every command at once (they wait on the clients' timeouts, 10 to 30 s each): those that need
    the cluster, the registry or the subject index end with exit 3 and a last line naming what did
    not answer, after at most one folded client line; the others do their work."""

    def run(name: str) -> tuple[str, int, str]:
        done = run_offline(_args(name, tmp_path), env=UNREACHABLE, timeout=120)
        return name, done.returncode, done.stderr

    with ThreadPoolExecutor(max_workers=len(COMMANDS)) as pool:
        results = list(pool.map(run, sorted(COMMANDS)))
    wrong = []
    for name, code, stderr in results:
        lines = stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        expected = OFFLINE.get(name, 3)
        names_it = any(f in last for f in ("no Kafka broker", "schema registry", "subject index"))
        if code != expected or "Traceback" in stderr or (expected == 3 and not (names_it and len(lines) <= 2)):
            wrong.append(f"{name}: exit {code}, {len(lines)} line(s), last: {last[:200]}")
    assert not wrong, "\n".join(wrong)


MISSING = "/nonexistent/missing-path"
# Every option or argument that names a file or directory to read (the output directories of
# catalog, replay --to-file, access apply --passwords-dir and dq run --docs are created).
READS_A_PATH: dict[str, list[str]] = {
    "produce": ["produce", MISSING, "--as", "jcom"],
    "replay --policy": ["replay", "--topic", "x", "--dry-run", "--policy", MISSING],
    "filter --policy": ["filter", "--source", "jcom", "--policy", MISSING],
    "policy check --policy": ["policy", "check", "--policy", MISSING],
    "policy check --schemas": ["policy", "check", "--schemas", MISSING],
    "policy notice --policy": ["policy", "notice", "--policy", MISSING],
    "policy render --policy": ["policy", "render", "--policy", MISSING],
    "policy diff": ["policy", "diff", MISSING, POLICY],
    "schemas check --schemas": ["schemas", "check", "--schemas", MISSING],
    "schemas check --policy": ["schemas", "check", "--policy", MISSING],
    "schemas publish --policy": ["schemas", "publish", "--policy", MISSING],
    "incident open --subjects": ["incident", "open", "--reason", "a test", "--subjects", MISSING],
    "stats preview": ["stats", "preview", MISSING, "--window", "2026-01-01"],
    "stats preview --policy": ["stats", "preview", POLICY, "--window", "2026-01-01", "--policy", MISSING],
}


def test_a_missing_file_is_named_in_one_line_with_exit_2_before_any_network_call() -> None:
    def run(name: str) -> tuple[str, int, str]:
        done = run_offline(READS_A_PATH[name], env=UNREACHABLE, timeout=120)
        return name, done.returncode, done.stderr

    with ThreadPoolExecutor(max_workers=len(READS_A_PATH)) as pool:
        results = list(pool.map(run, sorted(READS_A_PATH)))
    wrong = [
        f"{name}: exit {code}: {stderr.strip()[-200:]}"
        for name, code, stderr in results
        if code != 2 or len(stderr.strip().splitlines()) != 1 or MISSING not in stderr or "Traceback" in stderr
    ]
    assert not wrong, "\n".join(wrong)
