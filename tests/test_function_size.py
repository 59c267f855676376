"""No function of ``streams/`` is over 80 lines, from its ``def`` to its last line: a longer one is
split into named steps that read top-down. Only a declarative table (one literal of panels or
rules, say) may be longer, and only when it is named in ``DECLARATIVE_TABLES`` with why."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.layers import PACKAGE

pytestmark = pytest.mark.unit

MAX_LINES = 80
# "<path under streams/>:<qualified name>" -> why it is a table and not steps.
DECLARATIVE_TABLES: dict[str, str] = {}


def function_sizes(path: Path, root: Path) -> Iterator[tuple[str, int]]:
    """Each function and method of ``path`` (nested ones too) as ``<path>:<qualified name>``, with
    its length in lines."""
    where = path.relative_to(root).as_posix()

    def walk(node: ast.AST, scope: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{scope}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield f"{where}:{name}", (child.end_lineno or child.lineno) - child.lineno + 1
                yield from walk(child, f"{name}.")
            else:
                yield from walk(child, scope)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), "")


def too_long(root: Path) -> list[str]:
    return [
        f"{name}: {lines} lines"
        for path in sorted(root.rglob("*.py"))
        for name, lines in function_sizes(path, root)
        if lines > MAX_LINES and name not in DECLARATIVE_TABLES
    ]


def test_no_function_is_over_80_lines() -> None:
    found = too_long(PACKAGE)
    assert not found, "split these into named steps:\n" + "\n".join(found)


def test_every_declarative_table_allowed_is_still_long() -> None:
    sizes = dict(size for path in sorted(PACKAGE.rglob("*.py")) for size in function_sizes(path, PACKAGE))
    stale = [name for name in DECLARATIVE_TABLES if sizes.get(name, 0) <= MAX_LINES]
    assert not stale, f"no longer over {MAX_LINES} lines, or gone: {stale}"


def _function(name: str, lines: int, indent: str = "") -> str:
    """Source of a function ``lines`` long, its ``def`` included."""
    return f"{indent}def {name}():\n" + "".join(f"{indent}    x{n} = {n}\n" for n in range(lines - 1))


def test_the_check_sees_a_long_method_and_a_long_nested_function(tmp_path: Path) -> None:
    (tmp_path / "fine.py").write_text(_function("at_the_limit", MAX_LINES))
    (tmp_path / "long.py").write_text(
        "class Thing:\n"
        + _function("method", MAX_LINES + 1, indent="    ")
        + "def outer():\n"
        + _function("inner", MAX_LINES + 1, indent="    ")
    )
    assert too_long(tmp_path) == [
        f"long.py:Thing.method: {MAX_LINES + 1} lines",
        f"long.py:outer: {MAX_LINES + 2} lines",
        f"long.py:outer.inner: {MAX_LINES + 1} lines",
    ]
