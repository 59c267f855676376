"""Reading a statistics table's publications back, as its recipients do."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from streams.errors import SerdeError
from streams.kafka.reader import scan_topic
from streams.serde.registry import Registry
from streams.serde.wire import unframe
from streams.settings import Settings
from streams.topology import Topology

EPOCH = dt.date(1970, 1, 1)


def latest_publications(settings: Settings, table: str, *, day: dt.date | None = None) -> list[dict[str, Any]]:
    """The latest revision of each window of ``table`` (or only the window holding ``day``)."""
    topology = Topology(settings.topic_prefix)
    registry = Registry(settings.registry_conf())
    latest: dict[bytes, dict[str, Any]] = {}
    group = f"{settings.topic_prefix}.auditor.stats"
    for message in scan_topic(settings.kafka_common(), topology.stats(table), group_id=group):
        value = message.value()
        if value is None or message.key() is None:
            continue
        try:
            schema_id, body = unframe(value)
            record = registry.codec(schema_id).decode(body)
        except SerdeError:
            continue
        key = message.key() or b""
        record = dict(record)
        for name in ("window_from", "window_to"):  # Avro dates are days since 1970-01-01
            record[name] = EPOCH + dt.timedelta(days=int(record[name]))
        record["published_at"] = dt.datetime.fromtimestamp(int(record["published_at"]) / 1000, dt.UTC)
        if key not in latest or record["revision"] >= latest[key]["revision"]:
            latest[key] = record
    found = sorted(latest.values(), key=lambda r: r["window_from"])
    if day is None:
        return found
    return [r for r in found if r["window_from"] <= day < r["window_to"]]


def wait_for_publication(
    settings: Settings, table: str, day: dt.date, *, revision: int = 0, timeout: float = 120
) -> dict[str, Any] | None:
    """The latest publication of the window of ``table`` holding ``day`` once it has reached
    ``revision``; None if it has not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in latest_publications(settings, table, day=day) if r["revision"] >= revision]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            return None
        time.sleep(1)
