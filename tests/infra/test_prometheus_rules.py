"""Alert rules checked and unit-tested with promtool (pinned, built into .local/bin by `make setup`)."""

from __future__ import annotations

import subprocess

from streams.settings import PROJECT_ROOT
from tests.local_tools import local_tool

RULES_DIR = PROJECT_ROOT / "infra" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [local_tool("promtool"), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False
    )


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_rules_fire_as_the_unit_tests_expect() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_summary_and_a_runbook() -> None:
    import yaml

    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text(encoding="utf-8"))["groups"][0]["rules"]
    for rule in rules:
        assert rule["annotations"]["summary"] and len(rule["annotations"]["runbook"]) > 80, rule["alert"]
