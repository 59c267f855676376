"""Everything an operator sees of one worker: metrics, the HTTP endpoints, lag, readiness."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.errors import ConfigError
from streams.incidents.store import IncidentView
from streams.kafka.lag import LagMonitor
from streams.observability.health import HealthServer
from streams.observability.metrics import IncidentMetrics, PipelineMetrics
from streams.policy.model import Policy
from streams.serde.registry import Registry
from streams.settings import Settings
from streams.topology import Topology

log = logging.getLogger("jointuse.worker")
CHECK_TTL_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 2.0


class _Cached:
    """A reachability check run at most every few seconds (scrapes and probes come often)."""

    def __init__(self, check: Callable[[], object]) -> None:
        self.check = check
        self.value = False
        self.at = 0.0

    def __call__(self) -> bool:
        if time.monotonic() - self.at > CHECK_TTL_SECONDS:
            try:
                self.check()
                self.value = True
            except Exception:  # any failure means "not reachable" for a probe
                self.value = False
            self.at = time.monotonic()
        return self.value


class Telemetry(Collector):
    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        topics: list[str],
        registry: Registry,
        policy: Policy,
        assigned: Callable[[], bool],
    ) -> None:
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry)
        self.metrics.set_policy(policy.notice.id, policy.version)
        self.metrics.register_registry_counters(lambda: registry.lookups, lambda: registry.cache_hits)
        admin = AdminClient(settings.kafka_common())

        def broker() -> object:
            try:
                return admin.list_topics(timeout=PROBE_TIMEOUT_SECONDS)
            except KafkaException as exc:
                raise ConnectionError("broker unreachable") from exc

        # A probe of its own, quick and without retries: a registry that accepts connections and
        # never answers (frozen, overloaded) must make /readyz say 503 within a probe's timeout,
        # not hang it for the worker client's timeout and retries.
        probe = SchemaRegistryClient({**settings.registry_conf(), "timeout": PROBE_TIMEOUT_SECONDS, "max.retries": 0})
        self.checks: dict[str, Callable[[], bool]] = {
            "partitions_assigned": assigned,
            "broker": _Cached(broker),
            "schema_registry": _Cached(lambda: probe.get_subjects()),
        }
        try:
            self.server = HealthServer(
                self.registry, self.readiness, host=settings.metrics_host, port=settings.metrics_port
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {settings.metrics_host}:{settings.metrics_port} ({exc.strerror}); "
                "set JOINTUSE_METRICS_PORT (0 picks a free port)"
            ) from exc
        self.lag = LagMonitor(settings, group_id, topics, self.metrics.set_lag)
        self.incidents = IncidentView(
            settings.kafka_common(),
            Topology(settings.topic_prefix).incidents,
            group_id=f"{settings.topic_prefix}.pipeline.incident-view",
        )
        # Not a readiness check: a worker decides records just as well without its incident copy.
        IncidentMetrics(self.registry, lambda: self.incidents.book)
        self.registry.register(self)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Registration asks for names only; the reachability checks wait for a real scrape.
        yield GaugeMetricFamily("jointuse_dependency_up", "1 when the dependency answers.", labels=["dependency"])

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """``jointuse_dependency_up``, read at scrape time, so that alerts see an unreachable dependency."""
        family = GaugeMetricFamily("jointuse_dependency_up", "1 when the dependency answers.", labels=["dependency"])
        for name in ("broker", "schema_registry"):
            family.add_metric([name], 1.0 if self.checks[name]() else 0.0)
        yield family

    def readiness(self) -> dict[str, bool]:
        return {name: bool(check()) for name, check in self.checks.items()}

    def start(self) -> Telemetry:
        self.server.start()
        self.lag.start()
        self.incidents.start(timeout=None)  # not awaited: the incidents are for operators, not for deciding
        log.info("metrics and health endpoints on port %d", self.server.port)
        return self

    def stop(self) -> None:
        self.lag.stopping.set()
        self.incidents.stop()
        self.server.stop()
