"""Structured logs: one JSON object per line, with level, logger, worker id and trace id when known.

Messages carry field paths, reason codes, topics and offsets; never a field value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, worker_id: str | None = None) -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "worker_id": self.worker_id,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


KAFKA_CLIENT_LOGGER = "jointuse.librdkafka"
# Conditions a Kafka client retries by itself, reported while a broker, a coordinator or a new topic
# is still starting: a transactional producer's "Coordinator load in progress", aiokafka's
# NotEnoughReplicasError on a topic created a moment ago. They are handled (retried) and say nothing
# about the pipeline, so they are logged at debug; a condition that lasts shows up as an error or a
# stalled metric instead.
TRANSIENT_CONDITIONS = (
    "Coordinator load in progress",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "Coordinator not available",
    "COORDINATOR_NOT_AVAILABLE",
    "NotEnoughReplicas",
    "NOT_ENOUGH_REPLICAS",
    "LeaderNotAvailable",
    "LEADER_NOT_AVAILABLE",
)


class TransientRetries(logging.Filter):
    """Lowers a client's warning about a transient, self-retried condition to debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.DEBUG < record.levelno < logging.ERROR and any(
            c in record.getMessage() for c in TRANSIENT_CONDITIONS
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class FoldedRepeats(logging.Filter):
    """At most one line per cause and ``fold_seconds`` from the Kafka clients: a broker that is
    away makes librdkafka log the same failed connect every few milliseconds (hundreds of lines
    before a command's own one-line error). A cause is the message with its numbers and client
    names blanked; the next line of the same cause after the interval says how many were folded.
    A worker says it again each minute; a command, whose wait ends in its own error line, once.

    librdkafka ends a failed connect with how long the broker was in its state, and a repeat logged
    later adds how many it suppressed ("(after 0ms in state CONNECT, 1 identical error(s)
    suppressed)"): not part of the cause, or the same failed connect would print again with other
    figures."""

    FOLD_SECONDS = 60.0
    _NUMBERS = re.compile(r"\d+")
    _CLIENT = re.compile(r"\[rdkafka#[^\]]*\]|\[thrd:[^\]]*\]")
    _STATE_DURATION = re.compile(r" \(after \d+ms in state \w+(, \d+ identical error\(s\) suppressed)?\)")

    def __init__(self, fold_seconds: float = FOLD_SECONDS) -> None:
        super().__init__()
        self.fold_seconds = fold_seconds
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float | None, int]] = {}  # cause -> (when last shown, folded since)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith((KAFKA_CLIENT_LOGGER, "aiokafka")):
            return True
        cause = self._NUMBERS.sub("#", self._STATE_DURATION.sub("", self._CLIENT.sub("", record.getMessage())))
        now = time.monotonic()
        with self._lock:
            shown, folded = self._seen.get(cause, (None, 0))
            if shown is not None and now - shown < self.fold_seconds:
                self._seen[cause] = (shown, folded + 1)
                return False
            self._seen[cause] = (now, 0)
        if folded:
            record.msg = f"{record.getMessage()} ({folded} more like this folded)"
            record.args = None
        return True


def kafka_client_logger() -> logging.Logger:
    """The logger every librdkafka client writes to (its ``logger`` setting), instead of printing
    raw ``%4|...`` lines: warnings and above, through the same JSON handler as everything else."""
    logger = logging.getLogger(KAFKA_CLIENT_LOGGER)
    logger.setLevel(logging.WARNING)
    return logger


def logging_config(
    level: str = "INFO", worker_id: str | None = None, fold_seconds: float = FoldedRepeats.FOLD_SECONDS
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping (faust's ``logging_config`` setting takes it as is)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "streams.logs.JsonFormatter", "worker_id": worker_id}},
        "filters": {
            "transient": {"()": "streams.logs.TransientRetries"},
            "folded": {"()": "streams.logs.FoldedRepeats", "fold_seconds": fold_seconds},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
                # A library that sets its own logger's level (Great Expectations: INFO) would else
                # print below ours: propagation to the root's handler checks no logger's level.
                "level": level.upper(),
                # On the handler, so it sees the records of every client library's child loggers.
                "filters": ["transient", "folded"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}, KAFKA_CLIENT_LOGGER: {"level": "WARNING"}},
    }


def configure(
    level: str = "INFO", worker_id: str | None = None, *, fold_seconds: float = FoldedRepeats.FOLD_SECONDS
) -> None:
    import logging.config

    logging.config.dictConfig(logging_config(level, worker_id, fold_seconds))
    sys.stderr.flush()
