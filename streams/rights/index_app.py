"""The subject index worker (``jointuse index``): ``build_index_app``.

An agent folds the audit topic, which is keyed by subject, into one row per subject in a faust
table (``streams.rights.core.subject_index``); a disclosure report, an erasure or a replay comparison
then reads one row instead of the whole history. Rows live in RocksDB (faust's ``rocksdb://``
store, through ``rocksdict``) and in the table's changelog, which rebuilds them after a restart or
a rebalance.

- Reading: the audit is written in transactions, so only committed events count (faust reads
  uncommitted ones unless its own exactly-once is on; see ``streams.runtime.faust_kafka``).
- Idempotent: a row remembers the offsets of the events it folded since the partition's committed
  offset. At least once is enough: an offset is committed only after the changelog writes before it
  were acknowledged (``changelog_before_offsets``) and never past an event handed out and not
  folded (``TableConsumer``); an event read again, in whatever order, changes nothing.
- Lookups: ``GET /subjects/<subject>`` on any index worker, which forwards it to the worker that
  owns the subject's partition (faust's table metadata, as ``app.table_route`` does; that
  decorator asks the producer for the changelog's partitions, which it knows only after writing to
  it). The answer names how many events of that audit partition the index has not applied
  (``lag``). ``?wait=S`` waits up to S seconds until it has applied every event committed there
  before the request (an erasure needs that), and answers 503 if it has not.
- HTTPS with ``JOINTUSE_INDEX_CERT_FILE``; with ``JOINTUSE_INDEX_TOKEN`` (or ``_TOKEN_FILE``) every
  lookup and status request needs ``Authorization: Bearer <token>`` (401 otherwise). ``/metrics``
  holds counts only and stays open to the scraper.
- ``GET /index/status``: per owned partition, the lag, and the events skipped (not our JSON, or a
  key that differs from the event's subject; counted, never fatal). ``GET /metrics``: the same
  for Prometheus (``jointuse_index_events_total``, ``jointuse_index_skipped_total{reason}``,
  ``jointuse_index_lag_events{partition}``).

Exit codes: 0 after SIGTERM/SIGINT; before faust starts, 2 for a setting it cannot use (a
certificate, a token file) and 3 when no broker answers (``streams.cli.launch``); faust's 1 when it
fails otherwise (a port in use).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from typing import Any

import faust
import orjson
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.audit.core.event import AuditEvent, InvalidAuditEvent
from streams.kafka.partitioner import partition_of
from streams.observability.metrics import IndexMetrics
from streams.rights.audit_probe import AuditProbe
from streams.rights.core.subject_index import Correction, SubjectRow, fold, fold_correction
from streams.runtime.faust_app import raw_topic
from streams.runtime.faust_internals import table_recovery
from streams.runtime.faust_tables import changelog_before_offsets, table_app, table_consumer
from streams.settings import Settings
from streams.topology import SUBJECT_INDEX_TABLE, Topology

log = logging.getLogger("jointuse.index")
WAIT_STEP_SECONDS = 0.05


def create_app(settings: Settings, topology: Topology) -> faust.App:
    # One state directory per web port: two index workers on one host must not share a RocksDB.
    return table_app(
        settings,
        topology.subject_index_app,
        data_dir=settings.data_dir / f"index-{settings.index_port}",
        log_name=f"index-{settings.index_port}",
        web_enabled=True,
        web_bind=settings.index_host,
        web_host=settings.index_host,
        web_port=settings.index_port,
        web_ssl_context=settings.index_server_context(),
        canonical_url=f"{settings.index_scheme()}://{settings.index_host}:{settings.index_port}",
    )


def build_index_app(settings: Settings) -> faust.App:
    """The subject index's faust app, with its agents, hook and pages. Raises a ``JointUseError``
    for a setting it cannot use (a certificate, a token file: exit 2); reaches no broker."""
    index = SubjectIndexWorker(settings)
    app = index.app

    @app.page("/subjects/{subject}")
    async def subject_page(view: View, request: Request, subject: str) -> Response:
        return await index.subject_page(view, request, subject)

    @app.page("/metrics")
    async def metrics_page(view: View, request: Request) -> Response:
        """Prometheus: events folded, skipped by reason, and the lag of each partition owned here."""
        return await index.metrics_page(view)

    @app.page("/index/status")
    async def status_page(view: View, request: Request) -> Response:
        return await index.status_page(view, request)

    return app


class SubjectIndexWorker:
    """The table of rows, the agents that fold events into it, and the lookups that read it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topology = Topology(settings.topic_prefix)
        self.app = create_app(settings, self.topology)
        self.secret = settings.index_secret()
        self.forwarded_headers = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        # Forwarded lookups verify the owner's certificate with the index's CA (True: the system's, for HTTP unused).
        self.client_context: ssl.SSLContext | bool = (
            settings.index_client_context() if settings.index_scheme() == "https" else True
        )
        audit = raw_topic(self.app, self.topology.audit)
        # Partitioned like the audit topic (same key, same count), so faust assigns both partitions p
        # to the worker whose table holds partition p.
        corrections = raw_topic(self.app, self.topology.corrections)
        # Keys are the subject as raw UTF-8 bytes (faust's default key serializer), as in the audit
        # topic: a key hashes to the same partition in both; rows are JSON (the default value serializer).
        self.subjects = self.app.Table(SUBJECT_INDEX_TABLE, key_type=bytes)
        self.applied_next: dict[int, int] = {}  # audit partition -> the offset after the event applied last
        self.registry = CollectorRegistry()
        self.metrics = IndexMetrics(self.registry)
        self.probe = AuditProbe(settings.kafka_common(), self.topology.audit, group_id=self.topology.subject_index_app)
        self.app.agent(corrections, name="streams.rights.index_app.index_corrections")(self.index_corrections)
        self.app.on_partitions_revoked.connect(self.forget_revoked)
        self.app.agent(audit, name="streams.rights.index_app.index")(self.index)

    def _skip(self, reason: str) -> None:
        self.metrics.skipped.labels(reason).inc()

    def apply(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> None:
        """One audit event into its subject's row (in the table's partition of the event)."""
        self.metrics.applied.inc()
        try:
            event = AuditEvent.from_json(value or b"")
        except InvalidAuditEvent:
            self._skip("not_an_audit_event")
            return
        subject = event.subject
        if not subject:
            return  # an input that had no key: it has no subject
        if key is None or key != subject.encode():
            self._skip("key_mismatch")  # a row must live in the partition its lookups are routed to
            return
        stored = self.subjects.get(key)
        row = SubjectRow.from_json(stored) if stored else None
        folded = fold(row, event, partition, offset, self.committed_offset(partition))
        if folded is not None and folded is not row:
            self.subjects[key] = folded.to_json()

    def committed_offset(self, partition: int) -> int:
        return table_consumer(self.app).committed_offset(TP(self.topology.audit, partition))

    def apply_correction(self, key: bytes | None, value: bytes | None) -> None:
        """One filed correction into its subject's row (idempotent by request id)."""
        try:
            data = orjson.loads(value or b"")
            subject = str(data["subject"])
            correction = Correction(str(data["request_id"]), str(data["source"]), int(data["at_ms"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self._skip("bad_correction")
            return
        if key != subject.encode():
            self._skip("key_mismatch")
            return
        stored = self.subjects.get(key)
        row = SubjectRow.from_json(stored) if stored else None
        folded = fold_correction(row, subject, correction)
        if folded is not row:
            self.subjects[key] = folded.to_json()

    async def index_corrections(self, stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                self.apply_correction(event.message.key, event.message.value)
            except Exception as exc:  # one record never stops the index
                self._skip(type(exc).__name__)

    async def forget_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        (revoked,) = args  # if assigned again, read again from the committed offset
        for tp in revoked:
            if tp.topic == self.topology.audit:
                self.applied_next.pop(tp.partition, None)

    async def index(self, stream: faust.StreamT[Any]) -> None:
        changelog_before_offsets(self.app)
        async for event in stream.events():
            message = event.message
            try:
                self.apply(message.key, message.value, message.partition, message.offset)
            except Exception as exc:  # one event never stops the index (faust would crash the agent)
                self._skip(type(exc).__name__)
                log.warning("an audit event could not be indexed", extra={"error": type(exc).__name__})
            finally:
                self.applied_next[message.partition] = message.offset + 1

    async def lag_of(self, partition: int, end: int | None = None) -> tuple[int, int]:
        """How many audit events of ``partition`` below ``end`` the index has not applied (0: none;
        counted up to a few), and that end: the partition's high watermark as of the consumer's last
        fetch, unless given. Raises if it cannot be told."""
        tp = TP(self.topology.audit, partition)
        if end is None:
            # The last fetch's answer, not a new request: aiokafka's ListOffsets waits on a metadata
            # refresh (1.5 s here), and a fetch is at most ``fetch_max_wait_ms`` old.
            end = self.app.consumer.highwater(tp)
            if end is None:
                raise LookupError("the partition's end is not known yet")
        start = self.applied_next.get(partition)
        # A message handed out before the last one applied and not processed yet (faust skipped or
        # dropped it; it is read again): the partition is applied only up to it.
        unprocessed = table_consumer(self.app).first_unprocessed(tp)
        if start is not None and unprocessed is not None:
            start = min(start, unprocessed)
        return await asyncio.to_thread(self.probe.unapplied, partition, start, end), end

    def rebuilding(self) -> bool:
        """Rows are being restored from the changelog (recovery's ``completed`` is set once, at the
        first recovery; ``in_recovery`` covers every rebalance after it)."""
        app = self.app
        recovery = table_recovery(app)
        return bool(app.rebalancing or app.in_recovery or not recovery.completed.is_set())

    def owner_of(self, partition: int) -> str | None:
        """The web address of the worker whose table holds ``partition`` (the audit partition, which
        is the changelog's)."""
        for url, topics in self.app.router.table_metadata(SUBJECT_INDEX_TABLE).items():
            if partition in topics.get(self.topology.subject_index_changelog, ()):
                return str(url)
        return None

    def _refused(self, view: View, request: Request) -> Response | None:
        """401 for a request without the index's credential, when one is configured: a lookup tells
        which companies received a person's data."""
        if self.secret is None:
            return None
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.secret}".encode()):
            return None
        return view.json(
            {"error": "a credential is required (Authorization: Bearer, JOINTUSE_INDEX_TOKEN)"}, status=401
        )

    async def subject_page(self, view: View, request: Request, subject: str) -> Response:
        if (refusal := self._refused(view, request)) is not None:
            return refusal
        partitions = self.app.consumer.topic_partitions(self.topology.audit)
        if not partitions:
            return _unavailable(view, "the audit topic's partitions are not known yet")
        if self.rebuilding():
            return _unavailable(view, "the index is rebuilding its rows (a rebalance or a restart)")
        partition = partition_of(subject.encode(), partitions)
        owner = self.owner_of(partition)
        if owner is None:
            return _unavailable(view, "no index worker owns the subject's partition yet")
        if owner.rstrip("/") != str(self.app.conf.canonical_url).rstrip("/"):
            return await self._forward(view, request, owner)
        try:
            wait = min(float(request.query.get("wait", "0")), self.settings.index_wait_seconds)
        except ValueError:
            return view.json({"error": "wait must be a number of seconds"}, status=400)
        try:
            lag, end = await self.lag_of(partition)
            deadline = asyncio.get_running_loop().time() + wait
            while lag and wait and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(WAIT_STEP_SECONDS)
                lag, _ = await self.lag_of(partition, end)  # the end as of the request
        except Exception as exc:  # not assigned here any more, or the broker did not answer
            return _unavailable(view, f"the partition's offsets are not available ({type(exc).__name__})")
        if lag and wait:
            return _unavailable(view, "the index is behind the audit topic", lag=lag)
        stored = self.subjects.get(subject.encode())
        return view.json({"subject": subject, "partition": partition, "lag": lag, "row": stored or None})

    async def _forward(self, view: View, request: Request, owner: str) -> Response:
        target = f"{owner.rstrip('/')}{request.rel_url}"  # the path and query, as the client sent them
        try:
            async with self.app.http_client.get(
                target, headers=self.forwarded_headers, ssl=self.client_context
            ) as response:
                return view.text(await response.text(), content_type=response.content_type, status=response.status)
        except Exception as exc:
            return _unavailable(view, f"the owner of the subject's partition did not answer ({type(exc).__name__})")

    async def metrics_page(self, view: View) -> Response:
        self.metrics.lag.clear()
        owned = sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topology.audit)
        for partition in owned:
            try:
                self.metrics.lag.labels(str(partition)).set((await self.lag_of(partition))[0])
            except Exception:
                continue  # not known yet: no sample rather than a wrong one
        return view.bytes(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def status_page(self, view: View, request: Request) -> Response:
        if (refusal := self._refused(view, request)) is not None:
            return refusal
        owned = sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topology.audit)
        lags: dict[str, dict[str, int | None] | None] = {}
        for partition in owned:
            try:
                lag, end = await self.lag_of(partition)
                lags[str(partition)] = {"lag": lag, "end": end, "applied_to": self.applied_next.get(partition)}
            except Exception:
                lags[str(partition)] = None
        return view.json(
            {
                "partitions": lags,
                "applied": self.metrics.folded(),
                "skipped": self.metrics.skipped_by_reason(),
                "rebuilding": self.rebuilding(),
            }
        )


def _unavailable(view: View, reason: str, **extra: Any) -> Response:
    return view.json({"error": reason, **extra}, status=503)
