"""Starting and stopping ``jointuse worker`` child processes (demo, benchmarks, tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from streams.settings import Guarantee, Settings


def start_worker(
    settings: Settings,
    worker_id: str,
    *,
    runtime: str = "faust",
    guarantee: Guarantee = Guarantee.EXACTLY_ONCE,
    batch_size: int | None = None,
    quiet: bool = False,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``jointuse worker`` as a child process, which runs the worker itself (the pid is the worker's).
    The worker's own choices are its options (the batch size ``settings.batch_size`` unless given);
    ``settings`` reach it as the ``JOINTUSE_`` environment a user would set. Its output goes to
    ``log`` when given, nowhere when ``quiet``, else to this process's."""
    return _spawn(
        [
            sys.executable,
            "-m",
            "streams.cli.main",
            "worker",
            "--worker-id",
            worker_id,
            "--runtime",
            runtime,
            "--batch-size",
            str(batch_size or settings.batch_size),
            "--guarantee",
            guarantee,
        ],
        settings,
        quiet=quiet,
        log=log,
    )


def start_index(settings: Settings, *, quiet: bool = False, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``jointuse index`` (a subject-index worker) as a child process, on ``settings.index_port``."""
    return _spawn(
        [sys.executable, "-m", "streams.cli.main", "index", "--port", str(settings.index_port)],
        settings,
        quiet=quiet,
        log=log,
    )


def start_stats(settings: Settings, *, quiet: bool = False, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``jointuse stats run`` (the statistics worker) as a child process."""
    return _spawn([sys.executable, "-m", "streams.cli.main", "stats", "run"], settings, quiet=quiet, log=log)


def _spawn(args: list[str], settings: Settings, *, quiet: bool, log: Path | None) -> subprocess.Popen[bytes]:
    output: Any = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        output = log.open("ab")
    elif quiet:
        output = subprocess.DEVNULL
    try:
        return subprocess.Popen(
            args,
            env={**os.environ, **settings.worker_env()},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if log is not None else output,
            start_new_session=log is not None,  # a logged worker may outlive its parent (make demo KEEP=1)
        )
    finally:
        if log is not None:
            output.close()  # the child holds its own descriptor


def stop_worker(worker: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if the worker has not stopped within ``timeout`` seconds."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
