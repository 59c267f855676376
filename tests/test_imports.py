"""Every module imports: a worker started as a child process (faust) would otherwise fail only there,
where no unit test sees it (mypy does not know the client libraries' names)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import streams

MODULES = sorted(m.name for m in pkgutil.walk_packages(streams.__path__, prefix="streams."))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_every_module_is_listed() -> None:
    assert {"streams.app", "streams.runtime.faust_sink", "streams.runtime.confluent"} <= set(MODULES)
