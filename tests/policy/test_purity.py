"""The policy engine is pure: no Kafka, faust or Prometheus imports, no printing, no exiting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streams.policy

POLICY_DIR = Path(streams.policy.__file__).parent
FORBIDDEN_MODULES = ("faust", "confluent_kafka", "prometheus_client", "aiokafka", "mode", "typer", "rich")
FORBIDDEN_CALLS = ("print", "exit", "quit", "input")


def _sources() -> list[Path]:
    return sorted(POLICY_DIR.glob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
def test_policy_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
            assert name != "sys", f"{path.name} imports sys"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            assert not (isinstance(target, ast.Name) and target.id == "SystemExit"), f"{path.name} raises SystemExit"


def test_the_purity_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import confluent_kafka\nprint('x')\n")
    with pytest.raises(AssertionError):
        test_policy_module_is_pure(bad)
