from __future__ import annotations

import json
import logging

from streams.observability.logs import JsonFormatter


def test_log_lines_are_json_with_level_and_trace_id() -> None:
    record = logging.LogRecord("jointuse.worker", logging.WARNING, __file__, 1, "batch %d aborted", (3,), None)
    record.trace_id = "abc123"
    event = json.loads(JsonFormatter().format(record))
    assert event["level"] == "warning"
    assert event["message"] == "batch 3 aborted"
    assert event["trace_id"] == "abc123"
    assert event["logger"] == "jointuse.worker"
    assert "\n" not in JsonFormatter().format(record)
