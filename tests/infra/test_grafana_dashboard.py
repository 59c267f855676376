"""Every query of the Grafana dashboard names metrics the worker exports."""

from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry

from streams.observability.metrics import PipelineMetrics, RightsMetrics
from streams.quality.monitor import QualityMetrics
from streams.settings import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "infra" / "grafana" / "dashboards" / "jointuse.json"
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "le", "deriv", "time"}
LABELS_IN_QUERIES = {
    "source",
    "recipient",
    "purpose",
    "status",
    "reason",
    "class",
    "topic",
    "outcome",
    "dependency",
    "notice",
    "version",
    "suite",
    "expectation",
    "column",
    "result",
    "action",
}


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.register_registry_counters(lambda: 0, lambda: 0)
    QualityMetrics(registry)
    RightsMetrics(registry, lambda: 0)
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "info": ["_info"], "gauge": [""]}
    names = {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}
    names.add("jointuse_dependency_up")  # collected at scrape time by streams.observability.telemetry.Telemetry
    return names


def test_dashboard_queries_use_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = exported_names()
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(queries) >= 13
    for query in queries:
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"|\[[^\]]*\]', "", query)))
        names = words - PROMQL_WORDS - LABELS_IN_QUERIES
        assert names, query
        assert names <= exported, f"{query}: {sorted(names - exported)} not exported"


def test_dashboard_shows_what_operators_need() -> None:
    titles = " ".join(p["title"] for p in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]).lower()
    for topic in (
        "leak canary",
        "source",
        "recipient",
        "purposes",
        "withheld",
        "dead letters",
        "dropped",
        "latency",
        "lag",
    ):
        assert topic in titles, topic
