"""Starting and stopping ``jointuse worker`` child processes (demo, benchmarks, tests)."""

from __future__ import annotations

import os
import subprocess
import sys

from streams.settings import Settings


def start_worker(
    settings: Settings,
    worker_id: str,
    *,
    runtime: str = "faust",
    guarantee: str = "exactly_once",
    batch_size: int = 1000,
    quiet: bool = False,
) -> subprocess.Popen[bytes]:
    """``jointuse worker`` as a child process (the faust runtime replaces it with ``faust worker``)."""
    return subprocess.Popen(
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
            str(batch_size),
            "--guarantee",
            guarantee,
        ],
        env={**os.environ, **settings.worker_env()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
    )


def start_index(settings: Settings, *, quiet: bool = False) -> subprocess.Popen[bytes]:
    """``jointuse index`` (a subject-index worker) as a child process, on ``settings.index_port``."""
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli.main", "index", "--port", str(settings.index_port)],
        env={**os.environ, **settings.worker_env()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.DEVNULL if quiet else None,
    )


def stop_worker(worker: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if the worker has not stopped within ``timeout`` seconds."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
