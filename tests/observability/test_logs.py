from __future__ import annotations

import json
import logging
from typing import Any

from streams.observability.logs import JsonFormatter, logging_config


def test_log_lines_are_json_with_level_and_trace_id() -> None:
    record = logging.LogRecord("jointuse.worker", logging.WARNING, __file__, 1, "batch %d aborted", (3,), None)
    record.trace_id = "abc123"
    event = json.loads(JsonFormatter().format(record))
    assert event["level"] == "warning"
    assert event["message"] == "batch 3 aborted"
    assert event["trace_id"] == "abc123"
    assert event["logger"] == "jointuse.worker"
    assert "\n" not in JsonFormatter().format(record)


def test_the_worker_id_comes_from_the_configuration_not_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("JOINTUSE_WORKER_ID", "from-the-environment")
    config = logging_config("INFO", worker_id="worker-7")
    formatter = JsonFormatter(**{k: v for k, v in config["formatters"]["json"].items() if k != "()"})
    record = logging.LogRecord("jointuse.worker", logging.INFO, __file__, 1, "started", (), None)
    assert json.loads(formatter.format(record))["worker_id"] == "worker-7"
