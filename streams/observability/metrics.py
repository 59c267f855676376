"""Prometheus metrics of the pipeline, built against an injected ``CollectorRegistry``.

Label values come from bounded sets only: company ids and purpose ids from the policy, reason codes,
field classes, and field paths from the schema (a field that is not in the schema is counted under
the path ``<unknown>``). Never a customer id, never a value.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

import streams
from streams.incidents.core.book import IncidentBook
from streams.kafka.lag import PartitionLag
from streams.messages import InMessage, Outcome, forged_headers
from streams.policy.classification import UNKNOWN
from streams.policy.decision import Status
from streams.rights.core.erasure import ErasureOutcome

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PipelineMetrics:
    """The worker's metrics of what it read, decided, delivered and committed."""

    records_in: Counter
    records_out: Counter
    deliveries: Counter
    provisions: Counter
    provisions_withheld: Counter
    delivery_purposes: Counter
    withheld: Counter
    dead_letters: Counter
    fields_dropped: Counter
    leak_canary: Counter
    forged_headers: Counter
    batch_seconds: Histogram
    latency: BatchHistogram
    transactions: Counter
    consumer_lag: Gauge
    oldest_unprocessed: Gauge
    last_progress: Gauge
    policy: Info
    build: Info

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._count_records(registry)
        self._count_deliveries(registry)
        self._count_what_is_not_delivered(registry)
        self._count_alarms(registry)
        self._time_batches(registry)
        self._watch_progress(registry)
        self._describe(registry)

    def _count_records(self, registry: CollectorRegistry) -> None:
        self.records_in = Counter(
            "jointuse_records_in", "Input records, by source company.", ["source"], registry=registry
        )
        self.records_out = Counter(
            "jointuse_records",
            "Input records by outcome (shared, withheld, invalid).",
            ["source", "status"],
            registry=registry,
        )

    def _count_deliveries(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "jointuse_deliveries", "Records delivered, by recipient.", ["source", "recipient"], registry=registry
        )
        self.provisions = Counter(
            "jointuse_provisions",
            "Records provided to a channel of the insurer's notice, by channel and legal basis.",
            ["channel", "basis"],
            registry=registry,
        )
        self.provisions_withheld = Counter(
            "jointuse_provisions_withheld",
            "The provider's records a standing channel did not receive, by channel and reason "
            "(no_consent, stop_of_use, no_recipient, ...).",
            ["channel", "reason"],
            registry=registry,
        )
        self.delivery_purposes = Counter(
            "jointuse_delivery_purposes",
            "Purposes records were delivered for, by recipient and purpose.",
            ["recipient", "purpose"],
            registry=registry,
        )

    def _count_what_is_not_delivered(self, registry: CollectorRegistry) -> None:
        self.withheld = Counter(
            "jointuse_withheld", "Withheld records, by reason.", ["source", "reason"], registry=registry
        )
        self.dead_letters = Counter(
            "jointuse_dead_letters", "Records sent to dead letters, by reason.", ["source", "reason"], registry=registry
        )
        self.fields_dropped = Counter(
            "jointuse_fields_dropped", "Fields removed from every delivery.", ["class", "path"], registry=registry
        )

    def _count_alarms(self, registry: CollectorRegistry) -> None:
        self.leak_canary = Counter(
            "jointuse_leak_canary",
            "Deliveries caught holding a protected field; must stay 0.",
            ["recipient", "class"],
            registry=registry,
        )
        self.forged_headers = Counter(
            "jointuse_forged_headers",
            "Input records carrying a header named like the pipeline's own (ignored), by source and by "
            "that name (jointuse-other for a name the pipeline does not write).",
            ["source", "header"],
            registry=registry,
        )
        self.leak_canary.labels("none", "none")  # the series exists at 0 from the start, so alerts can see it

    def _time_batches(self, registry: CollectorRegistry) -> None:
        self.batch_seconds = Histogram(
            "jointuse_batch_processing_seconds",
            "Time to decode, decide and encode one batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.latency = BatchHistogram(
            "jointuse_end_to_end_latency_seconds",
            "From the input record's timestamp to the commit of its outputs.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.transactions = Counter(
            "jointuse_transactions", "Batch transactions, by outcome.", ["outcome"], registry=registry
        )
        for outcome in ("committed", "aborted"):
            self.transactions.labels(outcome)

    def _watch_progress(self, registry: CollectorRegistry) -> None:
        self.consumer_lag = Gauge(
            "jointuse_consumer_lag",
            "Records not yet processed, per input partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.oldest_unprocessed = Gauge(
            "jointuse_oldest_unprocessed_age_seconds",
            "Age of the first record of an input partition the worker has not committed yet (0: nothing waits).",
            ["topic", "partition"],
            registry=registry,
        )
        self.last_progress = Gauge(
            "jointuse_last_progress_timestamp_seconds", "When the worker last committed a batch.", registry=registry
        )

    def _describe(self, registry: CollectorRegistry) -> None:
        self.policy = Info("jointuse_policy", "The notice and version the worker enforces.", registry=registry)
        self.build = Info("jointuse_build", "Build information.", registry=registry)
        self.build.info({"version": streams.__version__})

    def set_lag(self, lags: Iterable[PartitionLag]) -> None:
        for lag in lags:
            self.consumer_lag.labels(lag.topic, str(lag.partition)).set(lag.lag)
            if lag.oldest_age_seconds is not None:
                self.oldest_unprocessed.labels(lag.topic, str(lag.partition)).set(lag.oldest_age_seconds)

    def set_policy(self, notice_id: str, version: str) -> None:
        self.policy.info({"notice": notice_id, "version": version})

    def register_registry_counters(self, lookups: Callable[[], int], cache_hits: Callable[[], int]) -> None:
        self.registry.register(_RegistryCollector(lookups, cache_hits))

    def observe(self, batch: Iterable[tuple[InMessage, Outcome]], *, committed_at: float | None = None) -> None:
        """Counts a committed batch."""
        now = time.time() if committed_at is None else committed_at
        # Most outcomes of a batch are alike: they are counted by what they say first, then each
        # kind is added once per label set (label lookups are the costly part).
        kinds: collections.Counter[tuple[Any, ...]] = collections.Counter()
        forged: collections.Counter[tuple[str, str]] = collections.Counter()
        latencies: list[float] = []
        for message, outcome in batch:
            deliveries = tuple(outcome.deliveries.items())
            kinds[
                (
                    outcome.source,
                    outcome.status,
                    outcome.reason,
                    deliveries,
                    outcome.dropped,
                    outcome.leaks,
                    outcome.provisions,
                    outcome.provisions_withheld,
                )
            ] += 1
            if message.timestamp_ms > 0:
                latencies.append(max(0.0, now - message.timestamp_ms / 1000))
            if message.headers:
                for name in forged_headers(message):
                    forged[(outcome.source or "unknown", name)] += 1
        counts: collections.Counter[tuple[Counter, tuple[str, ...]]] = collections.Counter()
        for (source_or_none, status, reason, deliveries, dropped, leaks, provisions, not_provided), n in kinds.items():
            source = source_or_none or "unknown"
            counts[(self.records_in, (source,))] += n
            counts[(self.records_out, (source, status.value))] += n
            if status is Status.WITHHELD:
                counts[(self.withheld, (source, reason))] += n
            elif status is Status.INVALID:
                counts[(self.dead_letters, (source, reason))] += n
            for recipient, purposes in deliveries:
                counts[(self.deliveries, (source, recipient))] += n
                for purpose in purposes:
                    counts[(self.delivery_purposes, (recipient, purpose))] += n
            for channel, basis in provisions:
                counts[(self.provisions, (channel, basis))] += n
            for channel, why in not_provided:
                counts[(self.provisions_withheld, (channel, why))] += n
            for path, cls in dropped:
                counts[(self.fields_dropped, (cls, "<unknown>" if cls == UNKNOWN else path))] += n
            for recipient, cls in leaks:
                counts[(self.leak_canary, (recipient, cls))] += n
        for (metric, labels), count in counts.items():
            metric.labels(*labels).inc(count)
        self.latency.observe_all(latencies)
        for (source, name), count in forged.items():
            self.forged_headers.labels(source, name).inc(count)
        self.last_progress.set(now)


class BatchHistogram(Collector):
    """A histogram without labels that takes a batch's observations at once: each finds its bucket
    with ``bisect`` (C) and the counts are added under one lock a batch. prometheus_client's
    ``Histogram`` takes its lock and walks its buckets in Python for every observation, and the
    end-to-end latency is observed for every record on the event loop (2.4 µs a record)."""

    def __init__(self, name: str, documentation: str, *, buckets: Iterable[float], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = sorted(b for b in buckets if b != math.inf)
        self._counts = [0] * (len(self._bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0
        self._lock = threading.Lock()  # scrapes read from the metrics server's thread
        registry.register(self)

    def observe_all(self, values: Iterable[float]) -> None:
        bounds, counts, find = self._bounds, self._counts, bisect.bisect_left
        with self._lock:
            total = self._sum  # added in order: the sum Histogram.observe would give, to the last bit
            for value in values:
                counts[find(bounds, value)] += 1  # the first bound >= value
                total += value
            self._sum = total

    def collect(self) -> Iterable[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, n in zip([*self._bounds, math.inf], counts, strict=True):
            running += n
            cumulative.append((_le(bound), running))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=cumulative, sum_value=total)


def _le(bound: float) -> str:
    """A bucket's ``le`` as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if bound == math.inf else repr(float(bound))


class _RegistryCollector(Collector):
    def __init__(self, lookups: Callable[[], int], cache_hits: Callable[[], int]) -> None:
        self.lookups = lookups
        self.cache_hits = cache_hits

    def collect(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(
            "jointuse_schema_registry_lookups", "Schema lookups sent to the registry.", value=self.lookups()
        )
        yield CounterMetricFamily(
            "jointuse_schema_cache_hits", "Schema lookups answered from the cache.", value=self.cache_hits()
        )


class RightsMetrics:
    """Stop-of-use and erasure, as seen by one worker."""

    def __init__(
        self, registry: CollectorRegistry, stopped_subjects: Callable[[], int], view_lag: Callable[[], int]
    ) -> None:
        self.view_lag = Gauge(
            "jointuse_rights_view_lag",
            "Rights requests on the rights topic that this worker's rights view has not applied yet.",
            registry=registry,
        )
        self.view_lag.set_function(lambda: float(view_lag()))
        self.stopped = Gauge(
            "jointuse_rights_stopped_subjects",
            "Subjects under a stop-of-use or erasure request, in this worker's rights view.",
            registry=registry,
        )
        self.stopped.set_function(lambda: float(stopped_subjects()))
        self.requests = Counter(
            "jointuse_rights_requests", "Rights requests handled, by action.", ["action"], registry=registry
        )
        self.tombstones = Counter(
            "jointuse_erasure_tombstones", "Tombstones written for erased subjects.", registry=registry
        )

    def observe(self, outcomes: Iterable[ErasureOutcome]) -> None:
        for outcome in outcomes:
            self.requests.labels(outcome.reason).inc()
            if outcome.tombstones:
                self.tombstones.inc(outcome.tombstones)


class IncidentMetrics:
    """Leak incidents (APPI Art. 26) as this worker's copy of the incidents topic has them."""

    def __init__(self, registry: CollectorRegistry, book: Callable[[], IncidentBook]) -> None:
        self.open = Gauge(
            "jointuse_incidents_open",
            "Leak incidents opened (by the leak canary or an operator) and not closed.",
            registry=registry,
        )
        self.open.set_function(lambda: float(len(book().open())))
        self.days_left = Gauge(
            "jointuse_incident_report_days_left",
            "Days (in Japan) until the next report to the PPC is due, over the open reportable incidents; "
            "negative once overdue, NaN when none is due.",
            registry=registry,
        )

        def days_left() -> float:
            due = book().next_deadline(dt.datetime.now(dt.UTC))
            return math.nan if due is None else float(due[2])

        self.days_left.set_function(days_left)


class IndexMetrics:
    """The subject index worker: events folded, events skipped, and how far behind it is."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.applied = Counter(
            "jointuse_index_events", "Audit events the subject index has read and folded.", registry=registry
        )
        self.skipped = Counter(
            "jointuse_index_skipped",
            "Records the subject index could not fold, by reason (not_json, key_mismatch, bad_correction, ...).",
            ["reason"],
            registry=registry,
        )
        self.lag = Gauge(
            "jointuse_index_lag_events",
            "Audit events of a partition this worker owns that the index has not applied (counted up to 100).",
            ["partition"],
            registry=registry,
        )

    def folded(self) -> int:
        """Events this process has read (``/index/status`` reports the counters, not a copy of them)."""
        return int(sum(s.value for m in self.applied.collect() for s in m.samples if s.name.endswith("_total")))

    def skipped_by_reason(self) -> dict[str, int]:
        return {
            s.labels["reason"]: int(s.value)
            for m in self.skipped.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }


class StatsMetrics:
    """The statistics worker: contributions counted, publications sent, its event time and lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.contributions = Counter(
            "jointuse_stats_contributions",
            "Contributions the statistics worker read, by outcome (counted; nothing_new: its cells were counted "
            "already, as when read again after a restart; skipped: not a contribution).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("counted", "nothing_new", "skipped"):
            self.contributions.labels(outcome)  # exported at 0 from the start: a rate needs the series
        self.publications = Counter(
            "jointuse_stats_publications",
            "Statistics publications sent, by table and kind (first, revision).",
            ["table", "kind"],
            registry=registry,
        )
        self.watermark = Gauge(
            "jointuse_stats_watermark_seconds",
            "The statistics worker's event time (the latest contribution's, Unix seconds).",
            registry=registry,
        )
        self.open_windows = Gauge(
            "jointuse_stats_open_windows", "Statistics windows counted and not yet published.", registry=registry
        )
        self.recovery_remaining = Gauge(
            "jointuse_stats_recovery_remaining_offsets",
            "Changelog offsets the statistics worker has still to read before it counts (0 once recovered).",
            registry=registry,
        )
        self.lag = Gauge(
            "jointuse_stats_lag_contributions",
            "Contributions not counted yet (the topic's end minus the worker's committed offset).",
            registry=registry,
        )

    def set_lag(self, lags: Iterable[PartitionLag]) -> None:
        self.lag.set(sum(lag.lag for lag in lags))
