"""No import goes up: each module imports its own folder, the core, or a lower layer; the layers are
read from the folders and the diagram of docs/architecture.md (tests/layers.py). Lazy imports inside
functions count too: a hidden cycle is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.layers import CORE_UNITS, LAYERS, PACKAGE, is_core, layer_of, module_name, unit_of

SOURCES = sorted(PACKAGE.rglob("*.py"))


def imported(path: Path, module: str) -> list[tuple[int, str]]:
    """The ``streams.`` modules a file imports, with their lines (relative imports resolved)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                base = ".".join([*package, base] if base else package)
            found.append((node.lineno, base))
    return [(line, name) for line, name in found if name.startswith("streams.")]


def violations(path: Path, module: str | None = None) -> list[str]:
    """Each import of ``path`` (the module ``module``, by default its name under streams/) that goes
    up a layer, to a sibling of its layer, or, from the core, out of the core."""
    module = module or module_name(path)
    if module == "streams":
        return []
    mine = layer_of(module)
    return [
        f"{module}:{line} imports {name} (layer {layer_of(name)}, its own {mine})"
        for line, name in imported(path, module)
        if _goes_wrong(module, name)
    ]


def _goes_wrong(module: str, name: str) -> bool:
    if is_core(module):
        return not is_core(name)  # the core imports only the core
    return unit_of(name) != unit_of(module) and layer_of(name) >= layer_of(module)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_goes_up(path: Path) -> None:
    assert violations(path) == []


def test_every_folder_has_a_layer() -> None:
    units = {unit_of(module_name(p)) for p in SOURCES if module_name(p) != "streams"}
    placed = {u for layer in LAYERS for u in layer}
    assert units - placed == CORE_UNITS
    assert placed <= units, "the diagram names a folder that does not exist"
    assert not placed & CORE_UNITS, "a folder is drawn both in the core and above it"


def test_a_features_core_folder_is_core_whatever_its_packages_layer() -> None:
    assert is_core("streams.stats.core.wire") and not is_core("streams.stats.app")
    assert layer_of("streams.rights.core.erasure") == 0 < layer_of("streams.rights.erasure")


def test_the_layer_check_sees_an_import_going_up_a_sibling_and_an_impure_core(tmp_path: Path) -> None:
    assert violations(PACKAGE / "serde" / "jsonl.py") == []
    cases = {
        "streams.serde.up": "from streams.cli.filter import filter_lines\n",
        "streams.rights.side": "def f():\n    from streams.audit.sealer import AuditSealer\n",
        "streams.policy.impure": "from streams.serde.wire import frame\n",
        "streams.processors.relative": "from ..worker import compose\n",
        "streams.stats.core.impure": "from streams.stats.app import build\n",
    }
    for module, source in cases.items():
        path = tmp_path / f"{module}.py"
        path.write_text(source)
        assert len(violations(path, module)) == 1, module
    fine = tmp_path / "fine.py"
    fine.write_text("from streams.policy.engine import Engine\nfrom streams.worker.compose import Worker\n")
    assert violations(fine, "streams.cli.fine") == []
