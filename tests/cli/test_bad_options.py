"""Bad options and files are refused before any network call (no broker is reachable here: the
bootstrap is a closed port), with exit 2, a line naming the option or file, and no traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli.helpers import run_offline

NO_BROKER = "127.0.0.1:1"

CASES = {
    "negative count": (["generate", "--count", "-5"], "--count"),
    "share above one": (["generate", "--count", "1", "--secrecy", "2.0"], "--secrecy"),
    "unknown source": (["generate", "--count", "1", "--source", "nosuchco"], "not a joint user"),
    "unknown consumer": (["consume", "--as", "nosuch"], "not a joint user"),
    "unknown producer": (["produce", "-", "--as", "nosuch"], "not a joint user"),
    "unknown rights source": (
        ["rights", "request", "C1", "--source", "nosuch", "--stop", "--verified-by", "x"],
        "not a joint user",
    ),
    "missing input file": (["produce", "/nonexistent.jsonl", "--as", "jcom"], "/nonexistent.jsonl: cannot read"),
    "index address not a url": (
        ["rights", "report", "C1", "--index-url", "notaurl", "--verified-by", "x"],
        "--index-url",
    ),
    "unknown notice version": (
        ["policy", "notice", "--version", "1999"],
        "jcom-group.yaml: --version: no such version",
    ),
    "negative partitions": (["topics", "create", "--partitions", "-3"], "--partitions"),
    "no schema directory": (["schemas", "check", "--schemas", "/nonexistent"], "/nonexistent: not a directory"),
    "unknown schema version": (["filter", "--source", "jcom", "--schema-version", "9"], "not a governed version"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_option_is_refused_before_any_network_call(case: str) -> None:
    args, named = CASES[case]
    started = time.monotonic()
    extra = ["--bootstrap", NO_BROKER] if _takes_bootstrap(args) else []
    done = run_offline([*args, *extra], env={"JOINTUSE_BOOTSTRAP_SERVERS": NO_BROKER}, timeout=60)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 20  # no client waited for the broker


def test_a_binary_schema_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "customer_record.v1.avsc").write_bytes(bytes(range(256)))
    done = run_offline(["schemas", "check", "--schemas", str(tmp_path)], timeout=60)
    assert done.returncode == 2 and "customer_record.v1.avsc: not a valid Avro schema" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_schema_checks_read_the_deployments_schema_directory(tmp_path: Path) -> None:
    for command in (["policy", "check"], ["schemas", "check"]):
        done = run_offline(command, env={"JOINTUSE_SCHEMA_DIR": str(tmp_path / "missing")}, timeout=60)
        assert done.returncode == 2 and f"{tmp_path / 'missing'}: not a directory of schemas" in done.stderr


def _takes_bootstrap(args: list[str]) -> bool:
    return args[0] in ("consume", "produce", "topics") or args[:2] == ["rights", "request"]


@pytest.mark.parametrize(
    "args",
    [["topics", "list"], ["topics", "describe"], ["lag"], ["consume", "--as", "jcom"], ["access", "plan"]],
    ids=" ".join,
)
def test_no_broker_is_one_line_and_exit_3_with_the_clients_noise_folded(args: list[str]) -> None:
    # access plan's 1 means "changes pending": a cluster it cannot read must not look like that
    done = run_offline(args, env={"JOINTUSE_BOOTSTRAP_SERVERS": NO_BROKER}, timeout=120)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert (lines[-1].startswith("jointuse: ") and NO_BROKER in lines[-1]) or "offsets" in lines[-1], lines[-1]
    assert len(lines) <= 3, lines  # at most one client line per cause before the command's own
    assert "Traceback" not in done.stderr


def test_an_index_that_does_not_answer_is_named_without_the_subjects_pseudonym() -> None:
    done = run_offline(
        ["rights", "report", "C1", "--source", "jcom", "--index-url", "http://127.0.0.1:1", "--verified-by", "x"]
    )
    assert done.returncode == 3 and "cannot read the subject index at http://127.0.0.1:1" in done.stderr
    assert "/subjects/" not in done.stderr and "Traceback" not in done.stderr


def test_a_missing_subject_key_is_the_users_to_fix_whatever_the_command() -> None:
    for args in (
        ["rights", "request", "C1", "--source", "jcom", "--correct", "--verified-by", "x"],
        ["rights", "report", "C1", "--verified-by", "x"],
    ):
        env = {"JOINTUSE_SUBJECT_KEY": "", "JOINTUSE_SUBJECT_KEY_FILE": "", "JOINTUSE_BOOTSTRAP_SERVERS": NO_BROKER}
        done = run_offline(args, env=env, timeout=60)
        assert done.returncode == 2 and "JOINTUSE_SUBJECT_KEY" in done.stderr, done.stderr
