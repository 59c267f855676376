"""A bad setting gives every command one line naming the variable and the rule, exit 2: never a
traceback, never the value (it may be a secret)."""

from __future__ import annotations

import pytest

from tests.cli.helpers import run_offline

BAD_SETTINGS = {
    "JOINTUSE_BATCH_SIZE": ("-5", "greater than or equal to 1"),
    "JOINTUSE_METRICS_PORT": ("SECRET-abc", "valid integer"),
    "JOINTUSE_SECURITY_PROTOCOL": ("SECRET-BOGUS", "'SASL_SSL'"),
}
COMMANDS = (["policy", "check"], ["filter", "--source", "jcom"], ["catalog"], ["topics", "list"])


@pytest.mark.parametrize("name", sorted(BAD_SETTINGS))
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_bad_setting_is_one_line_and_exit_2(name: str, command: list[str]) -> None:
    value, rule = BAD_SETTINGS[name]
    done = run_offline(command, env={name: value, "JOINTUSE_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"jointuse: {name}: ") and rule in lines[0], done.stderr
    assert "SECRET" not in done.stderr + done.stdout and "Traceback" not in done.stderr
