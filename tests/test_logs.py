from __future__ import annotations

import json
import logging
from typing import Any

from streams.logs import JsonFormatter, logging_config


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


def test_librdkafka_logs_become_json_lines_and_transient_retries_are_quiet(capfd: Any) -> None:
    """A real client with the project's settings: its logs come through Python logging as JSON, and
    a condition the client retries by itself is not printed as a problem."""
    import logging.config

    from confluent_kafka import Producer

    from streams.logs import KAFKA_CLIENT_LOGGER
    from streams.settings import Settings

    logging.config.dictConfig(logging_config("INFO"))
    try:
        capfd.readouterr()
        # Nothing listens on port 9: librdkafka reports the failed connection (log level 3).
        producer = Producer({**Settings(bootstrap_servers="127.0.0.1:9").kafka_common(), "reconnect.backoff.ms": 10})
        for _ in range(30):
            producer.poll(0.1)  # logs are served by poll()
        client = logging.getLogger(KAFKA_CLIENT_LOGGER)
        client.warning("GETPID [thrd:main]: Failed to acquire idempotence PID: Coordinator load in progress: retrying")
        client.warning("a condition that is not transient")
        output = capfd.readouterr()
    finally:
        logging.config.dictConfig(logging_config("WARNING"))
    assert "%3|" not in output.err and "%4|" not in output.err
    events = [json.loads(line) for line in output.err.splitlines()]
    from_client = [e for e in events if e["logger"] == KAFKA_CLIENT_LOGGER]
    assert any("127.0.0.1:9" in e["message"] for e in from_client), output.err[-1000:]
    assert [e["message"] for e in from_client if "load in progress" in e["message"]] == []
    assert any(e["message"] == "a condition that is not transient" for e in from_client)


def test_the_kafka_clients_repeated_lines_are_folded_to_one_per_cause_and_minute() -> None:
    import logging

    from streams.logs import KAFKA_CLIENT_LOGGER, FoldedRepeats

    folded = FoldedRepeats()

    def record(message: str, name: str = KAFKA_CLIENT_LOGGER) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)

    fail = "FAIL [rdkafka#consumer-{n}] [thrd:127.0.0.1:1/bootstrap]: Connect failed (after {n}ms in state CONNECT)"
    shown = [folded.filter(record(fail.format(n=n))) for n in range(200)]
    assert shown.count(True) == 1  # one line for the cause, whatever its numbers
    assert folded.filter(record("FAIL [rdkafka#producer-1] [thrd:x]: SASL authentication failed"))  # another cause
    assert all(folded.filter(record(fail.format(n=1), name="jointuse.pipeline")) for _ in range(3))  # ours: never
    folded._seen = {cause: (when - FoldedRepeats.FOLD_SECONDS, n) for cause, (when, n) in folded._seen.items()}
    late = record(fail.format(n=7))
    assert folded.filter(late) and "(199 more like this folded)" in late.getMessage()


def test_a_command_says_each_cause_once_however_long_it_waits() -> None:
    import logging
    import math

    from streams.logs import KAFKA_CLIENT_LOGGER, FoldedRepeats

    folded = FoldedRepeats(fold_seconds=math.inf)  # what the CLI configures
    message = "FAIL [rdkafka#consumer-1] [thrd:127.0.0.1:1/bootstrap]: Connect failed (after 0ms in state CONNECT)"
    assert folded.filter(logging.LogRecord(KAFKA_CLIENT_LOGGER, logging.ERROR, __file__, 1, message, None, None))
    folded._seen = {cause: (when - 3600, n) for cause, (when, n) in folded._seen.items() if when is not None}
    again = logging.LogRecord(KAFKA_CLIENT_LOGGER, logging.ERROR, __file__, 1, message, None, None)
    assert not folded.filter(again)  # an hour later: still folded
    suppressed = message.replace("CONNECT)", "CONNECT, 1 identical error(s) suppressed)")
    repeat = logging.LogRecord(KAFKA_CLIENT_LOGGER, logging.ERROR, __file__, 1, suppressed, None, None)
    assert not folded.filter(repeat)  # librdkafka's count of what it suppressed: the same cause
