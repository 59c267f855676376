"""What every faust app of this project shares: its settings, made from ``Settings``, and the worker
that runs it in this process."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import faust
from mode.utils.loops import get_event_loop

from streams.logs import logging_config
from streams.settings import Settings


def app_settings(settings: Settings, log_name: str) -> dict[str, Any]:
    """What every faust app of this project sets: the cluster and its credentials, no topic declared
    by faust (topics come from `jointuse topics create`), a member noticed gone in 10 s, and JSON
    logs in which the client library logs warnings and above only."""
    return {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        "broker_credentials": credentials(settings),
        "autodiscover": False,
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": 10,
        "broker_heartbeat_interval": 2,
        "logging_config": logging_config(settings.log_level, log_name),
    }


def credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The app's credentials from the settings: SCRAM (over TLS with SASL_SSL), or a client
    certificate (SSL), with the one TLS context every aiokafka client of the project uses."""
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_secret(),
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    """The topics ``names`` read as one, keys and values as bytes: decoding is ours, so that bad input
    is counted or becomes a dead letter instead of crashing an agent."""
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class JsonLogsWorker(faust.Worker):
    """faust's worker without its terminal spinner: at its first warning the spinner writes the
    cursor-hiding escape code whatever the output is (``Spinner.begin``), into JSON logs, and faust
    sets the root logger to DEBUG for it."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


def faust_worker(app: faust.App, *, log_level: str) -> JsonLogsWorker:
    """The worker ``faust worker`` would make for ``app``, without its banner (``quiet``): the app
    prepared as faust's command prepares it, standard output redirected to the logs."""
    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    return JsonLogsWorker(app, loglevel=log_level, quiet=True, redirect_stdouts=True, loop=get_event_loop())


def run_worker(app: faust.App, *, log_level: str) -> NoReturn:
    """Runs ``app`` in this process until it stops. faust's worker installs the handlers of SIGTERM
    and SIGINT, which stop it cleanly (exit 0); nothing stands between a SIGKILL and it."""
    faust_worker(app, log_level=log_level).execute_from_commandline()
