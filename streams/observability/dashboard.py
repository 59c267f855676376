"""The Grafana dashboard, built with grafana-foundation-sdk: what an operator on call looks at first,
then the flow in detail. ``infra/grafana/dashboards/jointuse.json`` is its output (a test checks it
is up to date):

    .venv/bin/python -m streams.observability.dashboard --write
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, ThresholdsMode
from grafana_foundation_sdk.models.dashboard import Threshold as ThresholdStep
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from streams.settings import PROJECT_ROOT

OUTPUT = PROJECT_ROOT / "infra" / "grafana" / "dashboards" / "jointuse.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")  # infra/grafana/provisioning/datasources
RATE = "[5m]"  # the window of the flow's per-second rates


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


def _target(ref_id: str, query: Query) -> prometheus.Dataquery:
    target = prometheus.Dataquery().ref_id(ref_id).expr(query.expr).datasource(DATASOURCE)
    return target.legend_format(query.legend) if query.legend else target


def _series(title: str, description: str, *queries: Query, unit: str = "short", span: int = 12) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
    panel = panel.unit(unit).height(8).span(span)
    for index, query in enumerate(queries):
        panel = panel.with_target(_target(chr(ord("A") + index), query))
    return panel


def _must_stay_zero(title: str, description: str, query: Query) -> stat.Panel:
    steps = [ThresholdStep(value=None, color="green"), ThresholdStep(value=1, color="red")]
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(_target("A", query))
        .thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
        .height(8)
        .span(6)
    )


def build() -> dashboard.Dashboard:
    on_call = (
        dashboard.Dashboard("jointuse: joint-use pipeline")
        .uid("jointuse")
        .tags(["jointuse"])
        .refresh("30s")
        .time("now-1h", "now")
        .with_row(dashboard.Row("On call: look here first"))
        .with_panel(
            _must_stay_zero(
                "Leak canary (must stay 0)",
                "Deliveries the independent canary caught holding a protected field; each was blocked and "
                "dead-lettered. Any value above 0 is an incident: see the JointUseLeakCanary runbook.",
                Query("sum(jointuse_leak_canary_total)"),
            )
        )
        .with_panel(
            stat.Panel()
            .title("Leak incidents open, and days to the next PPC report")
            .description(
                "Incidents opened by the leak canary or an operator and not closed, and the days (in Japan) "
                "until the next report on one of them is due (negative: overdue). `jointuse incident list`."
            )
            .datasource(DATASOURCE)
            .with_target(_target("A", Query("max(jointuse_incidents_open)", "open")))
            .with_target(_target("B", Query("min(jointuse_incident_report_days_left)", "days left")))
            .height(8)
            .span(6)
        )
        .with_panel(
            _series(
                "Deliveries per recipient per minute",
                "Records delivered to each joint user, per minute (5-minute rate).",
                Query("sum by (recipient) (rate(jointuse_deliveries_total[5m])) * 60", "{{recipient}}"),
                unit="short",
                span=9,
            )
        )
        .with_panel(
            _series(
                "Dead letters by reason per minute",
                "Inputs that could not be decided, by reason code (dlq topics hold them as produced).",
                Query("sum by (reason) (rate(jointuse_dead_letters_total[5m])) * 60", "{{reason}}"),
                span=9,
            )
        )
        .with_panel(
            _series(
                "Consumer lag per partition",
                "Input records not yet committed by the pipeline's group, per ingest partition.",
                Query("max by (topic, partition) (jointuse_consumer_lag)", "{{topic}}/{{partition}}"),
            )
        )
        .with_panel(
            _series(
                "Age of the oldest unprocessed record",
                "How old the first uncommitted record of each ingest partition is (0: nothing waits). "
                "Growing steadily means the pipeline is stuck or too slow; measured every 10 s.",
                Query("max by (topic, partition) (jointuse_oldest_unprocessed_age_seconds)", "{{topic}}/{{partition}}"),
                unit="s",
            )
        )
        .with_panel(
            _series(
                "Rights view lag and subject index lag",
                "Rights requests a worker has not applied yet (a stop takes effect once it has), and audit "
                "events the subject index has not folded (reports and erasures wait for them).",
                Query("max by (instance) (jointuse_rights_view_lag)", "rights view {{instance}}"),
                Query("sum by (partition) (jointuse_index_lag_events)", "index partition {{partition}}"),
            )
        )
    )
    flow = on_call.with_row(dashboard.Row("Flow"))
    for panel in _flow_panels():
        flow = flow.with_panel(panel)
    return flow


def _flow_panels() -> list[timeseries.Panel | table.Panel]:
    return [*_traffic_panels(), *_timing_panels(), *_state_panels()]


def _traffic_panels() -> list[timeseries.Panel]:
    """Where the records went: in, delivered, withheld, dead-lettered, and what was dropped."""
    return [
        _series(
            "Records in per second, by source",
            "Input records read, by the company that produced them.",
            Query(f"sum by (source) (rate(jointuse_records_in_total{RATE}))", "{{source}}"),
            unit="ops",
        ),
        _series(
            "Deliveries per second, by source and recipient",
            "Which company's records went to which joint user.",
            Query(f"sum by (source, recipient) (rate(jointuse_deliveries_total{RATE}))", "{{source}} → {{recipient}}"),
            unit="ops",
        ),
        _series(
            "Purposes delivered, by recipient",
            "Purposes the deliveries were tagged with (jointuse-purposes header).",
            Query(
                f"sum by (recipient, purpose) (rate(jointuse_delivery_purposes_total{RATE}))",
                "{{recipient}} {{purpose}}",
            ),
            unit="ops",
        ),
        _series(
            "Outcomes",
            "Shared, withheld or invalid, per second.",
            Query(f"sum by (status) (rate(jointuse_records_total{RATE}))", "{{status}}"),
            unit="ops",
        ),
        _series(
            "Withheld by reason",
            "Records shared with nobody, by reason (stop of use, no joint user, expired notice, ...).",
            Query(f"sum by (reason) (rate(jointuse_withheld_total{RATE}))", "{{reason}}"),
            unit="ops",
        ),
        _series(
            "Dead letters by source and reason",
            "Per producing company, so its engineers can find their own rejects.",
            Query(f"sum by (source, reason) (rate(jointuse_dead_letters_total{RATE}))", "{{source}} {{reason}}"),
            unit="ops",
        ),
        _series(
            "Fields dropped by class",
            "Fields removed before delivery: secrecy of communications, sensitive, insurer-only, unknown.",
            Query(f"sum by (class) (rate(jointuse_fields_dropped_total{RATE}))", "{{class}}"),
            unit="ops",
        ),
    ]


def _timing_panels() -> list[timeseries.Panel]:
    """How fast: latency, batch time and transactions, and the services the workers depend on."""
    return [
        _series(
            "End-to-end latency",
            "From the input's timestamp to the commit of its outputs.",
            Query(
                f"histogram_quantile(0.5, sum by (le) (rate(jointuse_end_to_end_latency_seconds_bucket{RATE})))", "p50"
            ),
            Query(
                f"histogram_quantile(0.99, sum by (le) (rate(jointuse_end_to_end_latency_seconds_bucket{RATE})))", "p99"
            ),
            unit="s",
        ),
        _series(
            "Batch processing time (p99) and transactions",
            "Time to decide one batch; transactions committed and aborted.",
            Query(
                f"histogram_quantile(0.99, sum by (le) (rate(jointuse_batch_processing_seconds_bucket{RATE})))",
                "batch p99",
            ),
            Query(f"sum by (outcome) (rate(jointuse_transactions_total{RATE}))", "{{outcome}}"),
        ),
        _series(
            "Dependencies and schema cache",
            "1 when Kafka and the registry answer; registry lookups against cache hits.",
            Query("min by (dependency) (jointuse_dependency_up)", "{{dependency}} up"),
            Query(f"sum(rate(jointuse_schema_cache_hits_total{RATE}))", "cache hits"),
            Query(f"sum(rate(jointuse_schema_registry_lookups_total{RATE}))", "registry lookups"),
        ),
    ]


def _state_panels() -> list[timeseries.Panel | table.Panel]:
    """What the workers hold: the policy in force, data quality, rights and statistics."""
    return [
        table.Panel()
        .title("Policy version in force")
        .description("The notice and version each worker enforces.")
        .datasource(DATASOURCE)
        .with_target(
            _target("A", Query("max by (notice, version) (jointuse_policy_info)"))
            .instant()
            .format(PromQueryFormat.TABLE)
        )
        .height(8)
        .span(12),
        _series(
            "Data quality: failed expectations in sampled batches",
            "Great Expectations suites run on samples of committed records.",
            Query(
                "sum by (suite, expectation, column) (increase(jointuse_dq_expectation_failures_total[15m]))",
                "{{suite}} {{expectation}} {{column}}",
            ),
            Query("sum by (suite, result) (increase(jointuse_dq_batches_total[15m]))", "{{suite}} {{result}}"),
        ),
        _series(
            "Rights: stopped subjects and erasures",
            "Subjects under a stop, requests handled per hour, tombstones written per hour.",
            Query("max(jointuse_rights_stopped_subjects)", "stopped subjects"),
            Query("sum by (action) (increase(jointuse_rights_requests_total[1h]))", "{{action}}"),
            Query("sum(increase(jointuse_erasure_tombstones_total[1h]))", "tombstones"),
        ),
        _series(
            "Statistics: contributions waiting, publications and open windows",
            "Contributions the statistics worker has not counted (JointUseStatisticsStalled when they wait "
            "and none is counted), tables published per hour (first and revision), and windows still open.",
            Query("max(jointuse_stats_lag_contributions)", "waiting"),
            Query("sum by (kind) (increase(jointuse_stats_publications_total[1h]))", "{{kind}} per hour"),
            Query("max(jointuse_stats_open_windows)", "open windows"),
        ),
    ]


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the Grafana dashboard JSON.",
        epilog="Example: python -m streams.observability.dashboard --write. Exit codes: 0 ok.",
    )
    parser.add_argument("--write", action="store_true", help=f"write {OUTPUT.relative_to(PROJECT_ROOT)}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT.relative_to(PROJECT_ROOT)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
