"""Runs the ``jointuse`` command line as a child process against a test's cluster settings."""

from __future__ import annotations

import os
import subprocess
import sys

from streams.settings import Settings


def run_cli(
    args: list[str], settings: Settings, *, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", *args],
        env={**os.environ, **settings.worker_env()},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"jointuse {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def run_offline(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``jointuse`` as a user runs it, with no stdin and extra environment, whatever it exits with."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli.main", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
