"""Leak incidents on the broker: a canary hit opens one incident through the real worker path, and
an operator opens one from the audit; neither the incident, the notices nor the report holds a value
of any record (checked with sentinel values)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from streams.audit.core.event import AuditEvent
from streams.cli.main import app
from streams.incidents.core.breach import REPORT_HEADINGS, canary_exposure, delivery_exposure
from streams.incidents.store import IncidentView, read_book
from streams.kafka.company_client import produce_lines
from streams.observability.metrics import IncidentMetrics
from streams.policy.engine import Engine
from streams.settings import Guarantee, Settings
from streams.worker.confluent_main import ConfluentWorker
from tests.runtime.helpers import audit_events, generated_lines, read_topic, setup_topics

pytestmark = pytest.mark.kafka
SENTINEL = "SENTINEL-"
COMPANIES = ("jcom", "jcom-insurance")


def _sentinel_lines(count: int, seed: int) -> dict[str, list[bytes]]:
    """Generated records whose names are sentinels: a value that must never reach an incident."""
    lines = generated_lines(count, seed=seed)
    marked: dict[str, list[bytes]] = {}
    for company, raw in lines.items():
        marked[company] = []
        for number, line in enumerate(raw):
            record = json.loads(line)
            if isinstance(record, dict) and "name" in record:
                record["name"] = f"{SENTINEL}{company}-{number}"
            marked[company].append(json.dumps(record, ensure_ascii=False).encode())
    return marked


def _produce(settings: Settings, lines: dict[str, list[bytes]]) -> int:
    return sum(produce_lines(settings, company, lines[company]).produced for company in lines)


def _run_worker(settings: Settings, worker_id: str) -> None:
    # The composed worker's pipeline alone, in this process (no telemetry server, no erasure).
    worker = ConfluentWorker(settings, worker_id=worker_id, guarantee=Guarantee.EXACTLY_ONCE, batch_size=50)
    worker.run_pipeline_only(max_idle_seconds=4)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _notices(settings: Settings, expected: int) -> list[dict[str, Any]]:
    topology = setup_topics(settings)
    found = []
    for company in COMPANIES:
        found += [json.loads(m.value()) for m in read_topic(settings, topology.notices(company), quiet=2.0)]
    assert len(found) == expected, (len(found), expected)
    return found


def _leaking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault in the projection, injected from outside: every delivery gets a sensitive field back.
    The worker is the real one (its processor, its loop, its transactions, the broker)."""
    decide = Engine.decide

    def faulty(self: Engine, *args: Any, **kwargs: Any) -> Any:
        decision = decide(self, *args, **kwargs)
        leaked = {
            r: replace(d, record={**d.record, "medical_history": f"{SENTINEL}medical"})
            for r, d in decision.deliveries.items()
        }
        return replace(decision, deliveries=leaked)

    monkeypatch.setattr(Engine, "decide", faulty)


def test_a_canary_hit_opens_one_incident_matching_the_blocked_deliveries(
    kafka: Settings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"i{unique}", "metrics_port": 0})
    topology = setup_topics(settings, partitions=2)
    total = _produce(settings, _sentinel_lines(120, seed=3))
    _leaking(monkeypatch)
    _run_worker(settings, "canary-0")
    monkeypatch.undo()

    events = audit_events(settings, topology, total)
    blocked = canary_exposure([AuditEvent.from_json(e) for e in events])
    assert blocked.deliveries > 0 and blocked.classes == ("sensitive",)
    book = read_book(settings)
    (incident,) = book.incidents.values()
    facts = incident.facts()
    assert incident.incident_id.startswith("canary-") and facts.opened_by == "leak_canary"
    assert (facts.subjects, facts.deliveries) == (len(blocked.subjects), blocked.deliveries)
    assert (facts.recipients, facts.classes, facts.blocked) == (blocked.recipients, blocked.classes, True)
    assert facts.assessment.reportable  # sensitive data: Rules Art. 7 (i)
    assert not [m for m in read_topic(settings, topology.deliver("jcom-insurance"), quiet=1.0)]

    # One notice per blocked input, to its source company, naming its own customer key.
    notices = _notices(settings, facts.notices_written)
    hits = Counter(e["source"] for e in events if e.get("reason") == "leak_canary")
    assert Counter(n["recipient"] for n in notices) == hits
    assert all(n["subject_key"].startswith(f"{n['recipient']}:{n['recipient']}-") for n in notices)
    assert {n["subject"] for n in notices} == set(blocked.subjects)

    report = _cli("incident", "report", incident.incident_id, "--prefix", settings.topic_prefix, "--lang", "ja")
    for number, heading in enumerate(REPORT_HEADINGS["ja"], start=1):
        assert f"## {number}. {heading}" in report
    assert f"{facts.subjects:,}人" in report and "要配慮個人情報が含まれる" in report
    incidents_raw = [m.value() for m in read_topic(settings, topology.incidents, quiet=1.0)]
    for written in [report.encode(), *incidents_raw, *(json.dumps(n, ensure_ascii=False).encode() for n in notices)]:
        assert SENTINEL.encode() not in written

    # A worker's copy of the incidents: one open, its report due in days.
    view = IncidentView(settings.kafka_common(), topology.incidents, group_id=f"{settings.topic_prefix}.view")
    registry = CollectorRegistry()
    IncidentMetrics(registry, lambda: view.book)
    view.start(timeout=30)
    try:
        assert registry.get_sample_value("jointuse_incidents_open") == 1.0
        assert 3 <= (registry.get_sample_value("jointuse_incident_report_days_left") or -1) <= 5
        _cli("incident", "filed", incident.incident_id, "--report", "preliminary", "--prefix", settings.topic_prefix)
        _cli("incident", "close", incident.incident_id, "--reason", "fixed", "--prefix", settings.topic_prefix)
        deadline = time.monotonic() + 20
        while view.book.open() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert registry.get_sample_value("jointuse_incidents_open") == 0.0
    finally:
        view.stop()
    assert "no open incidents" in _cli("incident", "list", "--prefix", settings.topic_prefix)


def test_an_operator_opens_an_incident_for_what_one_recipient_received(kafka: Settings, unique: str) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"o{unique}", "metrics_port": 0})
    topology = setup_topics(settings, partitions=2)
    total = _produce(settings, _sentinel_lines(80, seed=4))
    _run_worker(settings, "op-0")
    events = audit_events(settings, topology, total)
    start = dt.datetime.fromtimestamp(min(e["processed_at_ms"] for e in events) / 1000, dt.UTC)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    expected = delivery_exposure([AuditEvent.from_json(e) for e in events], recipient="jcom-insurance")
    assert expected.subjects and not read_book(settings).incidents

    output = _cli(
        "incident", "open", "--reason", "jcom-insurance reported a breach of its CRM",
        "--recipient", "jcom-insurance", "--from-time", start.isoformat(), "--to-time", end.isoformat(),
        "--prefix", settings.topic_prefix,
    )  # fmt: skip
    incident_id = output.strip().splitlines()[-1]
    facts = read_book(settings).incidents[incident_id].facts()
    assert (facts.subjects, facts.deliveries, facts.recipients) == (
        len(expected.subjects),
        expected.deliveries,
        ("jcom-insurance",),
    )
    assert facts.opened_by and not facts.blocked and facts.notices_written == len(expected.subjects)
    notices = _notices(settings, len(expected.subjects))
    # Every notice names the customer at its own company, read back from the ingest record's key.
    assert all(n["subject_key"] and n["subject_key"].startswith(f"{n['recipient']}:") for n in notices)
    assert {n["subject"] for n in notices} == set(expected.subjects)
    assert all(n["recipients"] == ["jcom-insurance"] and not n["blocked"] for n in notices)
    report = _cli("incident", "report", incident_id, "--lang", "en", "--prefix", settings.topic_prefix)
    for heading in REPORT_HEADINGS["en"]:
        assert heading in report
    for written in [report, *map(json.dumps, notices)]:
        assert SENTINEL not in written

    # A window with nothing in it opens nothing.
    later = (end + dt.timedelta(hours=1)).isoformat()
    result = CliRunner().invoke(
        app,
        ["incident", "open", "--reason", "x", "--from-time", later, "--prefix", settings.topic_prefix],
    )
    assert result.exit_code == 1 and len(read_book(settings).incidents) == 1
