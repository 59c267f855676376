"""Running a faust app in this process: the one way the CLI starts the faust runtime's worker, the
subject index and the statistics worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from streams.cli.exits import explained, fail
from streams.errors import JointUseError, exit_code_of

if TYPE_CHECKING:
    import faust

    from streams.settings import Settings


def run_faust_app(what: str, settings: Settings, build: Callable[[], faust.App], *, log_level: str) -> NoReturn:
    """Builds the app and runs faust's worker with it in this process until SIGTERM or SIGINT (exit
    0), so that signals reach the worker directly (a SIGKILL kills it, nothing in between).

    Before faust starts, one line and the exit code for what would stop it: the configuration first
    (exit 2), then a broker that does not answer (3); ``what`` names the app in that line."""
    from streams.kafka.company_client import ensure_reachable
    from streams.runtime.faust_app import run_worker

    try:
        settings.ssl_context()  # an unusable TLS file is one line here, not a traceback in faust
        app = build()
        ensure_reachable(settings)
    except JointUseError as exc:
        cause = explained(exc)
        fail(f"{what} cannot start: {cause}", exit_code_of(cause))
    run_worker(app, log_level=log_level)
