"""Every module imports (mypy does not know the client libraries' names, so a wrong one would show
only when a command runs), and importing one starts nothing: the faust apps are made by functions
from ``Settings`` when a command runs them."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import streams
from streams.settings import PROJECT_ROOT

MODULES = sorted(m.name for m in pkgutil.walk_packages(streams.__path__, prefix="streams."))
FAUST_APPS = ("streams.app", "streams.stats.app", "streams.rights.index_app")


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_every_module_is_listed() -> None:
    assert {*FAUST_APPS, "streams.runtime.faust_sink", "streams.runtime.confluent"} <= set(MODULES)


CHECK_NOTHING_STARTED = """
import logging, multiprocessing, sys, threading
import faust
levels = {name: logging.getLogger(name).level for name in ("", "aiokafka", "faust", "jointuse")}
modules = [__import__(name, fromlist=["_"]) for name in sys.argv[1:]]
assert threading.active_count() == 1, threading.enumerate()
assert multiprocessing.active_children() == []
assert {name: logging.getLogger(name).level for name in levels} == levels, "a logger's level changed"
assert not logging.getLogger().handlers, "logging was configured"
made = [name for module in modules for name, value in vars(module).items() if isinstance(value, faust.App)]
assert not made, made
print("nothing started")
"""


def test_importing_the_faust_apps_without_a_broker_starts_nothing(tmp_path: Path) -> None:
    """In a fresh interpreter, with no broker at the address: no app, thread, child process, log
    line, logging change or directory."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK_NOTHING_STARTED, *FAUST_APPS],
        env={
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "JOINTUSE_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "JOINTUSE_DATA_DIR": str(tmp_path / "data"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "nothing started\n", "")
    assert not (tmp_path / "data").exists()
