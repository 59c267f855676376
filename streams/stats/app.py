"""The statistics worker (``jointuse stats run``): ``build_stats_app``.

The pipeline writes, for every shared record, its subject's pseudonym and its cells in each
statistics table to ``<prefix>.stats-contributions.v1``, in the transaction that shares it (a
withheld or invalid record never counts), a transaction's contributions in one message
(``streams.stats.core.wire``). This worker folds them into the windows of
``streams.stats.core.book.StatsBook`` and publishes each window to ``<prefix>.stats.<table>.v1``
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

Exit codes: 0 after SIGTERM/SIGINT; before faust starts, 2 for a policy or schema it cannot use
and 3 when no broker answers (``streams.cli.launch``); faust's 1 when it fails otherwise.
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
from streams.runtime.faust_app import raw_topic
from streams.runtime.faust_internals import table_recovery
from streams.runtime.faust_tables import changelog_before_offsets, table_app, table_consumer
from streams.serde.avro_codec import AvroCodec
from streams.serde.registry import Registry
from streams.serde.wire import frame
from streams.settings import Settings
from streams.stats.core.book import StatsBook, WindowCounts, contributed_cells
from streams.stats.core.publication import Publication, from_state, publication_record, publication_state
from streams.stats.core.wire import unpack
from streams.stats.schema import load_stats_schema
from streams.topology import Topology

log = logging.getLogger("jointuse.stats")
WATERMARK = b"\x00watermark"  # the stats-published row that holds the event-time watermark


def create_app(settings: Settings, topology: Topology) -> faust.App:
    return table_app(
        settings, topology.stats_app, data_dir=settings.data_dir / "stats", log_name="stats", web_enabled=False
    )


def build_stats_app(settings: Settings) -> faust.App:
    """The statistics worker's faust app, with its agent, task and hook. Raises a ``JointUseError``
    for a policy or schema that cannot be used (exit 2); reaches no broker."""
    return StatsCounter(settings).app


class StatsCounter:
    """The book of windows, the tables it is rebuilt from, and what the worker serves of them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schema = load_stats_schema(settings.schema_dir)
        self.codec = AvroCodec(self.schema)
        self.topology = Topology(settings.topic_prefix)
        self.policy = load_policies(settings.policy_path).latest
        self.app = create_app(settings, self.topology)
        contributions = raw_topic(self.app, self.topology.stats_contributions)
        # subject|day -> {table|window: the cells, as lists}
        self.subjects = self.app.Table("stats-subjects", key_type=bytes)
        # table|window -> publication_state; the watermark
        self.published = self.app.Table("stats-published", key_type=bytes)
        self.book = StatsBook(self.policy, grace=dt.timedelta(seconds=settings.stats_grace_seconds))
        self.rebuilt = False
        self.watermark_ms = 0
        self.status: dict[str, Any] = {"state": "starting"}  # ``_describe``, as /status serves it
        self.status_lag: dict[str, int] = {}
        self.codec_ids: dict[str, int] = {}
        self.registry = CollectorRegistry()
        self.metrics = StatsMetrics(self.registry)
        self.app.task(self.serve_metrics)
        self.app.on_partitions_revoked.connect(self.forget)
        self.app.agent(contributions, name="streams.stats.app.count")(self.count)

    async def serve_metrics(self) -> None:
        """/metrics, /healthz, /readyz and /status on JOINTUSE_STATS_METRICS_PORT, and the group's lag
        every 10 s. Ready: the worker that counts, its tables recovered (a standby answers 503).
        /status says what it does and waits for (``_describe``), refreshed every second here, in the
        loop that changes what it reads."""
        settings, status = self.settings, self.status
        try:
            server = HealthServer(
                self.registry,
                lambda: {"counting": self.rebuilt, "recovered": status.get("state") == "counting"},
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
        LagMonitor(settings, self.topology.stats_app, [self.topology.stats_contributions], self._set_lag).start()
        log.info("metrics and health endpoints", extra={"port": server.port})
        recovering_since = said_at = 0.0
        while True:
            described = self._describe()
            status.clear()
            status.update(described)
            remaining = int(described.get("changelog_remaining", 0))
            self.metrics.recovery_remaining.set(remaining)
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

    def _set_lag(self, lags: list[PartitionLag]) -> None:
        self.metrics.set_lag(lags)
        self.status_lag["contributions"] = sum(lag.lag for lag in lags)

    def _describe(self) -> dict[str, Any]:
        """What the worker is doing: ``standby`` (another counts), ``recovering`` (with the changelog
        offsets left), or ``counting``; of the contributions, the committed offset, the first one read
        and not yet counted (a message faust dropped is read again from there) and how many are not
        committed yet; the event time and the next window it closes."""
        consumer = table_consumer(self.app)
        owned = [tp for tp in consumer.assignment() if tp.topic == self.topology.stats_contributions]
        recovery = table_recovery(self.app)
        described: dict[str, Any] = {"state": "standby" if not owned else "counting"}
        if owned and recovery.in_recovery:
            described.update(state="recovering", changelog_remaining=recovery.active_remaining_total())
        for tp in owned:
            described["contributions"] = {
                "committed": consumer.committed_offset(tp),
                "first_unprocessed": consumer.first_unprocessed(tp),
                "behind": self.status_lag.get("contributions"),
            }
        next_close = self.book.next_close
        described.update(
            watermark=_iso(self.watermark_ms) if self.watermark_ms else None,
            open_windows=self.book.open_windows,
            next_window_closes=next_close.isoformat() if next_close else None,
        )
        return described

    def _rebuild(self) -> None:
        """The book from the tables, once they are recovered: the windows, their subjects, what was
        published of each, and the watermark."""
        for key, value in self.subjects.items():
            subject, _, _ = key.decode().rpartition("|")
            tables = {}
            for slot, cells in value.items():
                table, _, window = slot.partition("|")
                tables[table] = {"window": window, "cells": cells}
            self.book.add_contribution(subject, {"tables": tables})
        for key, value in self.published.items():
            if key == WATERMARK:
                self.watermark_ms = int(value)
                continue
            table, window = key.decode().split("|", 1)
            self.book.restore(table, dt.date.fromisoformat(window), *from_state(value))
        self.rebuilt = True
        self.metrics.watermark.set(self.watermark_ms / 1000)
        self.metrics.open_windows.set(self.book.open_windows)
        log.info("statistics rebuilt", extra={"windows": len(self.book.windows), "watermark_ms": self.watermark_ms})

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One message: a batch's contributions, or one. Each that is not ours is counted and skipped
        (never fatal); the others count."""
        for found in unpack(key, value):
            if found is None:
                self.metrics.contributions.labels("skipped").inc()
                continue
            try:
                self._count(*found)
            except Exception as exc:  # one contribution never stops the others, nor the statistics
                self.metrics.contributions.labels("skipped").inc()
                log.warning("a contribution could not be counted", extra={"error": type(exc).__name__})

    def _count(self, subject: str, found: dict[str, Any]) -> None:
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
            self.metrics.contributions.labels("skipped").inc()
            return
        # One row per subject and day (of the event, in Japan) holds its cells in every table: one
        # changelog write per contribution, whatever the number of tables.
        row = f"{subject}|{day.isoformat()}".encode()
        before = self.subjects.get(row) or {}
        after = dict(before)
        for table_id, window, _, added in parts:
            slot = f"{table_id}|{window}"
            cells = {tuple(c) for c in before.get(slot, [])} | added
            after[slot] = sorted(list(c) for c in cells)
        if after != before:
            self.subjects[row] = after
        counted = sum(self.book.add_cells(subject, table_id, start, cells) for table_id, _, start, cells in parts)
        self.metrics.contributions.labels("counted" if counted else "nothing_new").inc()
        if at_ms > self.watermark_ms:
            self.watermark_ms = at_ms
            self.metrics.watermark.set(at_ms / 1000)

    async def forget(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Another worker counts now, or this one again after the rebalance: from the tables, then."""
        self.book = StatsBook(self.policy, grace=self.book.grace)
        self.rebuilt = False
        self.watermark_ms = 0

    async def count(self, stream: faust.StreamT[Any]) -> None:
        """Counts each contribution and publishes what its event time closed, or what it revised.
        Publishing happens here, per event, because faust writes table changes only in a stream's
        context: the event time moves only with events, so nothing is due between them."""
        changelog_before_offsets(self.app)
        async for event in stream.events():
            if not self.rebuilt:
                self._rebuild()  # at the first event: faust hands events over only once the tables are recovered
            self.apply(event.message.key, event.message.value)  # never raises: faust would crash the agent
            watermark = dt.datetime.fromtimestamp(self.watermark_ms / 1000, dt.UTC)
            if self.watermark_ms and self.book.due(watermark) and self._everything_before_counted(event):
                for window, publication in self.book.advance(watermark):
                    await self._send(window, publication)
                # Kept with the publications only (a write per contribution would be a third of the
                # changelog): every window it had closed is published, so a restart that resumes from
                # an older watermark changes nothing; the next contribution moves it on.
                self.published[WATERMARK] = self.watermark_ms
            self.metrics.open_windows.set(self.book.open_windows)

    def _everything_before_counted(self, event: Any) -> bool:
        """Whether every contribution before this event's was counted. faust may drop a message it has
        handed out at a start or a rebalance; the consumer reads it again once a later one was processed
        (``TableConsumer.offset_to_commit``). A window closed by a later contribution then waits for it: its
        first publication would otherwise miss what the dropped message holds (a replacement worker
        would publish a day short of those subjects), and a revision would follow a second later. The
        read again reaches this event once more, which publishes then."""
        first = table_consumer(self.app).first_unprocessed(event.message.tp)
        return first is None or first >= event.message.offset

    def _schema_id(self, table: str) -> int:
        if table not in self.codec_ids:
            registry = Registry(self.settings.registry_conf())
            self.codec_ids[table] = registry.register(f"{self.topology.stats(table)}-value", self.schema)
        return self.codec_ids[table]

    async def _send(self, window: WindowCounts, publication: Publication) -> None:
        native = publication_record(
            publication,
            start=window.start,
            end=window.end,
            policy_version=self.policy.notice.version,
            published_at=dt.datetime.now(dt.UTC),
        )
        body = frame(self._schema_id(window.table), self.codec.encode(native))
        key = f"{window.table}:{window.start.isoformat()}".encode()
        topic = self.app.topic(self.topology.stats(window.table), key_serializer="raw", value_serializer="raw")
        await topic.send(key=key, value=body)
        self.published[f"{window.table}|{window.start.isoformat()}".encode()] = publication_state(
            publication, window.published_counts or {}
        )
        self.metrics.publications.labels(window.table, "revision" if publication.revision else "first").inc()
        log.info(
            "published",
            extra={
                "table": window.table,
                "window": window.start.isoformat(),
                "revision": publication.revision,
                "cells": len(publication.cells),
            },
        )


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, JST).isoformat()
