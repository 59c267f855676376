"""Starting a faust app as this process: the one way the CLI launches the faust runtime's worker,
the subject index and the statistics worker."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from streams.settings import Settings


def exec_faust_worker(
    app: str,
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    log_level: str,
    web: bool,
    broker_first: bool = True,
) -> NoReturn:
    """Replaces this process with ``faust -A <app> worker`` (its settings and ``env`` in the
    environment), so that signals reach the faust worker directly (a SIGTERM stops it cleanly, a
    SIGKILL kills it, nothing in between). Without a broker faust prints a traceback and exits 1:
    ``broker_first`` waits for a broker's answer before (one line and exit 3, ``ClusterError``
    through the CLI's one error path). The pipeline's app checks its configuration first and then
    the broker itself (exit 2 before 3, as the confluent runtime)."""
    settings.ssl_context()  # an unusable TLS file is one line here (exit 2), not a traceback in faust
    if broker_first:
        from streams.kafka.company_client import ensure_reachable

        ensure_reachable(settings)
    argv = [sys.executable, "-m", "faust", "-A", app, "--quiet", "worker", "-l", log_level]
    if not web:
        argv.append("--without-web")
    os.execve(sys.executable, argv, {**os.environ, **settings.worker_env(), **(env or {})})
