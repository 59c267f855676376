"""The statistics worker: ``jointuse stats run`` (``faust -A streams.stats.app worker``).

The pipeline writes, for every shared record, its subject's pseudonym and its cells in each
statistics table to ``<prefix>.stats-contributions.v1``, in the transaction that shares it (a
withheld or invalid record never counts), a transaction's contributions in one message
(``streams.processors.contributions``). This worker folds them into the windows of
``streams.stats.book.StatsBook`` and publishes each window to ``<prefix>.stats.<table>.v1``
once its end plus the grace has passed in event time, then a revision whenever late records change
it, under the suppression rules of docs/statistics.md.

- State: the cells each subject was in per window (``stats-subjects``, a row per subject and
  day, RocksDB and a changelog), and what was published per window (``stats-published``: what a revision builds
  on, and the event-time watermark). After a restart the book is rebuilt from both.
- Idempotent: a contribution read again adds nothing (a subject's cells in a window only grow), so
  at least once is enough; offsets are committed only after the changelog writes before them
  (``changelog_before_offsets``). A publication sent twice after a crash is the same revision.
- One partition: a window's counts need every subject, so the contributions topic has one
  partition and one worker counts; a second worker stands by.

Exit codes are faust's: 0 after SIGTERM/SIGINT, non-zero when it cannot start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from streams.kafka.lag import LagMonitor, PartitionLag
from streams.observability.health import HealthServer
from streams.observability.metrics import StatsMetrics
from streams.policy.calendar import JST
from streams.policy.loader import load_policies
from streams.processors.contributions import unpack
from streams.runtime.faust_tables import changelog_before_offsets, table_app, table_consumer
from streams.serde.avro_codec import AvroCodec
from streams.serde.registry import Registry
from streams.serde.wire import frame
from streams.settings import Settings, load_settings
from streams.stats.book import StatsBook, WindowCounts, contributed_cells
from streams.stats.publication import Publication, from_state, publication_record, publication_state
from streams.stats.schema import load_stats_schema
from streams.topology import Topology

log = logging.getLogger("jointuse.stats")
logging.getLogger("aiokafka").setLevel(logging.WARNING)
WATERMARK = b"\x00watermark"  # the stats-published row that holds the event-time watermark


def create_app(settings: Settings, topology: Topology) -> faust.App:
    return table_app(
        settings, topology.stats_app, data_dir=settings.data_dir / "stats", log_name="stats", web_enabled=False
    )


settings = load_settings()
SCHEMA = load_stats_schema(settings.schema_dir)
CODEC = AvroCodec(SCHEMA)
topology = Topology(settings.topic_prefix)
policy = load_policies(settings.policy_path).latest
app = create_app(settings, topology)
contributions = app.topic(
    topology.stats_contributions, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
subjects = app.Table("stats-subjects", key_type=bytes)  # subject|day -> {table|window: the cells, as lists}
published = app.Table("stats-published", key_type=bytes)  # table|window -> publication_state; the watermark
book = StatsBook(policy, grace=dt.timedelta(seconds=settings.stats_grace_seconds))
state = {"rebuilt": False, "watermark_ms": 0}
status: dict[str, Any] = {"state": "starting"}  # ``_describe``, as /status serves it
status_lag: dict[str, int] = {}
codec_ids: dict[str, int] = {}
registry = CollectorRegistry()
metrics = StatsMetrics(registry)


async def _serve_metrics() -> None:
    """/metrics, /healthz, /readyz and /status on JOINTUSE_STATS_METRICS_PORT, and the group's lag
    every 10 s. Ready: the worker that counts, its tables recovered (a standby answers 503).
    /status says what it does and waits for (``_describe``), refreshed every second here, in the
    loop that changes what it reads."""
    try:
        server = HealthServer(
            registry,
            lambda: {"counting": bool(state["rebuilt"]), "recovered": status.get("state") == "counting"},
            host=settings.metrics_host,
            port=settings.stats_metrics_port,
            status=lambda: dict(status),
        )
    except OSError as exc:
        log.error(
            "cannot listen for metrics; set JOINTUSE_STATS_METRICS_PORT (0 picks a free port)",
            extra={"port": settings.stats_metrics_port, "error": exc.strerror},
        )
        return
    server.start()
    LagMonitor(settings, topology.stats_app, [topology.stats_contributions], _set_lag).start()
    log.info("metrics and health endpoints", extra={"port": server.port})
    recovering_since = said_at = 0.0
    while True:
        described = _describe()
        status.clear()
        status.update(described)
        remaining = int(described.get("changelog_remaining", 0))
        metrics.recovery_remaining.set(remaining)
        now = time.monotonic()
        if described["state"] != "recovering":
            recovering_since = 0.0
        elif not recovering_since:
            recovering_since = said_at = now
        elif now - said_at >= 10:  # a recovery that takes long says so, with what is left
            said_at = now
            log.log(
                logging.WARNING if now - recovering_since >= 60 else logging.INFO,
                "recovering the statistics tables from their changelogs; counting starts after",
                extra={"remaining_offsets": remaining, "seconds": round(now - recovering_since)},
            )
        await asyncio.sleep(1.0)


def _set_lag(lags: list[PartitionLag]) -> None:
    metrics.set_lag(lags)
    status_lag["contributions"] = sum(lag.lag for lag in lags)


def _describe() -> dict[str, Any]:
    """What the worker is doing: ``standby`` (another counts), ``recovering`` (with the changelog
    offsets left), or ``counting``; of the contributions, the committed offset, the first one read
    and not yet counted (a message faust dropped is read again from there) and how many are not
    committed yet; the event time and the next window it closes."""
    consumer = table_consumer(app)
    owned = [tp for tp in consumer.assignment() if tp.topic == topology.stats_contributions]
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # the TableManager has it, TableManagerT not
    described: dict[str, Any] = {"state": "standby" if not owned else "counting"}
    if owned and recovery.in_recovery:
        described.update(state="recovering", changelog_remaining=recovery.active_remaining_total())
    for tp in owned:
        described["contributions"] = {
            "committed": consumer.committed_offset(tp),
            "first_unprocessed": consumer.first_unprocessed(tp),
            "behind": status_lag.get("contributions"),
        }
    next_close = book.next_close
    described.update(
        watermark=_iso(state["watermark_ms"]) if state["watermark_ms"] else None,
        open_windows=book.open_windows,
        next_window_closes=next_close.isoformat() if next_close else None,
    )
    return described


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, JST).isoformat()


app.task(_serve_metrics)


def _rebuild() -> None:
    """The book from the tables, once they are recovered: the windows, their subjects, what was
    published of each, and the watermark."""
    for key, value in subjects.items():
        subject, _, _ = key.decode().rpartition("|")
        tables = {}
        for slot, cells in value.items():
            table, _, window = slot.partition("|")
            tables[table] = {"window": window, "cells": cells}
        book.add_contribution(subject, {"tables": tables})
    for key, value in published.items():
        if key == WATERMARK:
            state["watermark_ms"] = int(value)
            continue
        table, window = key.decode().split("|", 1)
        book.restore(table, dt.date.fromisoformat(window), *from_state(value))
    state["rebuilt"] = True
    metrics.watermark.set(state["watermark_ms"] / 1000)
    metrics.open_windows.set(book.open_windows)
    log.info("statistics rebuilt", extra={"windows": len(book.windows), "watermark_ms": state["watermark_ms"]})


def apply(key: bytes | None, value: bytes | None) -> None:
    """One message: a batch's contributions, or one. Each that is not ours is counted and skipped
    (never fatal); the others count."""
    for found in unpack(key, value):
        if found is None:
            metrics.contributions.labels("skipped").inc()
            continue
        try:
            _count(*found)
        except Exception as exc:  # one contribution never stops the others, nor the statistics
            metrics.contributions.labels("skipped").inc()
            log.warning("a contribution could not be counted", extra={"error": type(exc).__name__})


def _count(subject: str, found: dict[str, Any]) -> None:
    try:
        tables = found["tables"]
        at_ms = int(found["at_ms"])
        day = dt.datetime.fromtimestamp(at_ms / 1000, JST).date()
        # Read whole before anything is kept (the rebuild reads the window back).
        parts = [
            (table_id, part["window"], dt.date.fromisoformat(part["window"]), contributed_cells(part))
            for table_id, part in tables.items()
        ]
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, OSError):
        metrics.contributions.labels("skipped").inc()
        return
    # One row per subject and day (of the event, in Japan) holds its cells in every table: one
    # changelog write per contribution, whatever the number of tables.
    row = f"{subject}|{day.isoformat()}".encode()
    before = subjects.get(row) or {}
    after = dict(before)
    for table_id, window, _, added in parts:
        slot = f"{table_id}|{window}"
        cells = {tuple(c) for c in before.get(slot, [])} | added
        after[slot] = sorted(list(c) for c in cells)
    if after != before:
        subjects[row] = after
    counted = sum(book.add_cells(subject, table_id, start, cells) for table_id, _, start, cells in parts)
    metrics.contributions.labels("counted" if counted else "nothing_new").inc()
    if at_ms > state["watermark_ms"]:
        state["watermark_ms"] = at_ms
        metrics.watermark.set(at_ms / 1000)


@app.on_partitions_revoked.connect
async def _forget(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Another worker counts now, or this one again after the rebalance: from the tables, then."""
    global book
    book = StatsBook(policy, grace=book.grace)
    state.update(rebuilt=False, watermark_ms=0)


@app.agent(contributions)
async def count(stream: faust.StreamT[Any]) -> None:
    """Counts each contribution and publishes what its event time closed, or what it revised.
    Publishing happens here, per event, because faust writes table changes only in a stream's
    context: the event time moves only with events, so nothing is due between them."""
    changelog_before_offsets(app)
    async for event in stream.events():
        if not state["rebuilt"]:
            _rebuild()  # at the first event: faust hands events over only once the tables are recovered
        apply(event.message.key, event.message.value)  # never raises: faust would crash the agent
        watermark = dt.datetime.fromtimestamp(state["watermark_ms"] / 1000, dt.UTC)
        if state["watermark_ms"] and book.due(watermark) and _everything_before_counted(event):
            for window, publication in book.advance(watermark):
                await _send(window, publication)
            # Kept with the publications only (a write per contribution would be a third of the
            # changelog): every window it had closed is published, so a restart that resumes from
            # an older watermark changes nothing; the next contribution moves it on.
            published[WATERMARK] = state["watermark_ms"]
        metrics.open_windows.set(book.open_windows)


def _everything_before_counted(event: Any) -> bool:
    """Whether every contribution before this event's was counted. faust may drop a message it has
    handed out at a start or a rebalance; the consumer reads it again once a later one was processed
    (``TableConsumer._new_offset``). A window closed by a later contribution then waits for it: its
    first publication would otherwise miss what the dropped message holds (a replacement worker
    would publish a day short of those subjects), and a revision would follow a second later. The
    read again reaches this event once more, which publishes then."""
    first = table_consumer(app).first_unprocessed(event.message.tp)
    return first is None or first >= event.message.offset


def _schema_id(table: str) -> int:
    if table not in codec_ids:
        registry = Registry(settings.registry_conf())
        codec_ids[table] = registry.register(f"{topology.stats(table)}-value", SCHEMA)
    return codec_ids[table]


async def _send(window: WindowCounts, publication: Publication) -> None:
    native = publication_record(
        publication,
        start=window.start,
        end=window.end,
        policy_version=policy.notice.version,
        published_at=dt.datetime.now(dt.UTC),
    )
    schema_id = _schema_id(window.table)
    body = frame(schema_id, CODEC.encode(native))
    key = f"{window.table}:{window.start.isoformat()}".encode()
    await app.topic(topology.stats(window.table), key_serializer="raw", value_serializer="raw").send(
        key=key, value=body
    )
    published[f"{window.table}|{window.start.isoformat()}".encode()] = publication_state(
        publication, window.published_counts or {}
    )
    metrics.publications.labels(window.table, "revision" if publication.revision else "first").inc()
    log.info(
        "published",
        extra={
            "table": window.table,
            "window": window.start.isoformat(),
            "revision": publication.revision,
            "cells": len(publication.cells),
        },
    )


def main() -> None:
    app.main()
