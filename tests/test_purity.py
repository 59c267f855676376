"""The core is pure: the notice engine, the pipeline's values and each feature's ``core/`` (found by
tests/layers.py) import no Kafka, faust or Prometheus, print nothing, exit nowhere, and import nothing
but the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.layers import core_paths, is_core, module_name

FORBIDDEN_MODULES = ("faust", "confluent_kafka", "prometheus_client", "aiokafka", "mode", "typer", "rich")
FORBIDDEN_CALLS = ("print", "exit", "quit", "input")


@pytest.mark.parametrize("path", core_paths(), ids=lambda p: module_name(p))
def test_core_module_is_pure(path: Path) -> None:
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
            if name.startswith("streams."):
                assert is_core(name), f"{path.name} imports {name}, which is not in the core"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            assert not (isinstance(target, ast.Name) and target.id == "SystemExit"), f"{path.name} raises SystemExit"


def test_the_purity_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import confluent_kafka\nprint('x')\n")
    with pytest.raises(AssertionError):
        test_core_module_is_pure(bad)


def test_the_purity_check_sees_a_core_module_importing_an_adapter(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from streams.kafka.clients import producer\n")
    with pytest.raises(AssertionError, match="not in the core"):
        test_core_module_is_pure(bad)


def test_the_core_lists_the_notice_engine_and_each_features_rules() -> None:
    names = {module_name(p) for p in core_paths()}
    assert {
        "streams.policy.engine",
        "streams.messages",
        "streams.audit.core.event",
        "streams.rights.core.subject_index",
        "streams.stats.core.wire",
    } <= names
    assert all(p.is_file() for p in core_paths())
