"""Starting a faust app as this process: the one way the CLI launches the faust runtime's worker,
the subject index and the statistics worker."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import NoReturn


def exec_faust_worker(app: str, env: Mapping[str, str], *, log_level: str, web: bool) -> NoReturn:
    """Replaces this process with ``faust -A <app> worker``, so that signals reach the faust worker
    directly (a SIGTERM stops it cleanly, a SIGKILL kills it, nothing in between)."""
    argv = [sys.executable, "-m", "faust", "-A", app, "worker", "-l", log_level]
    if not web:
        argv.append("--without-web")
    os.execve(sys.executable, argv, {**os.environ, **env})
