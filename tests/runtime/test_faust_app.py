"""The worker every faust app of the project runs with: faust's, quiet, without the terminal
spinner that writes escape codes into the JSON logs, and the client library at warnings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streams.runtime.faust_app import JsonLogsWorker, app_settings, faust_worker
from streams.runtime.faust_tables import table_app
from streams.settings import Settings

pytestmark = pytest.mark.unit


def test_the_worker_has_no_banner_and_no_spinner(settings: Settings, tmp_path: Path) -> None:
    app = table_app(settings, "worker.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    worker = faust_worker(app, log_level="warn")
    assert isinstance(worker, JsonLogsWorker) and worker.quiet and worker.app is app
    worker.on_setup_root_logger(logging.getLogger("tests.faust_app"), logging.WARNING)
    assert worker.spinner is None


def test_the_client_library_logs_warnings_and_above_only(settings: Settings) -> None:
    config = app_settings(settings.model_copy(update={"log_level": "DEBUG"}), "worker")["logging_config"]
    assert config["root"]["level"] == "DEBUG" and config["loggers"]["aiokafka"]["level"] == "WARNING"
