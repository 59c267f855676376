"""The subject index on the real broker: its rows say what the whole audit topic says, after a
SIGKILL and a restart too, and the report reads them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from streams.audit.core.event import AuditEvent
from streams.devtools.processes import start_index, stop_worker
from streams.errors import SubjectIndexUnavailable
from streams.rights.core.subject_index import exposures_of
from streams.rights.index_client import IndexAnswer, SubjectIndex
from streams.settings import Settings
from tests.cli.helpers import run_cli
from tests.runtime.helpers import (
    audit_events,
    customers_of,
    generated_lines,
    produce_generated,
    read_topic,
    running_index,
    running_worker,
    setup_topics,
    with_index,
)

pytestmark = pytest.mark.kafka


def _caught_up(index: SubjectIndex, subject: str, timeout: float = 90) -> IndexAnswer:
    """The subject's row once the index has applied its whole partition; on failure, what the index
    said it was waiting for (rebuilding its rows, or behind the audit topic by N events)."""
    deadline = time.monotonic() + timeout
    said = "no answer yet"
    while time.monotonic() < deadline:
        try:
            answer = index.lookup(subject, wait_seconds=5)
            if answer.lag == 0:
                return answer
            said = f"behind the subject's audit partition by {answer.lag} events"
        except SubjectIndexUnavailable as exc:
            said = str(exc)
        time.sleep(0.5)
    status = index.status() or "no answer"
    pytest.fail(f"the index did not catch up within {timeout:.0f} s: {said}; its status: {status}")


def _subjects(events: list[dict[str, Any]]) -> set[str]:
    return {e["subject"] for e in events if e.get("subject")}


def _same_as_the_audit(
    index: SubjectIndex, events: list[dict[str, Any]], positions: list[Any] | None = None, **seen: Any
) -> int:
    """Every subject's row has the groups the audit events give; returns the deliveries compared.
    ``positions``: each event's (audit partition, offset); ``seen``: what the test saw earlier (a
    killed worker's status); both told when a row differs."""
    deliveries = 0
    for subject in sorted(_subjects(events)):
        answer = _caught_up(index, subject)
        expected = exposures_of([AuditEvent.from_json(e) for e in events], frozenset({subject}))
        got = answer.row.exposures if answer.row else ()
        if got != expected:
            # Enough to tell a row never folded from one overwritten or one folded from the wrong events.
            told = {
                "subject": subject,
                "row": answer.row and {"applied": answer.row.applied, "exposures": len(got)},
                "lag": answer.lag,
                "events": [
                    (e["status"], len(e.get("recipients") or ()), e.get("input"), positions and positions[i])
                    for i, e in enumerate(events)
                    if e.get("subject") == subject
                ],
                "status_now": index.status(),
                **seen,
            }
            pytest.fail(f"the index's row differs from the audit topic's: {told}; expected {expected}, got {got}")
        deliveries += sum(e.deliveries for e in got)
    return deliveries


def test_the_index_agrees_with_the_audit_topic_and_the_report_reads_it(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    settings = with_index(kafka.model_copy(update={"topic_prefix": f"i{unique}"}), str(tmp_path))
    topology = setup_topics(settings, partitions=3)
    produced = produce_generated(settings, 150, seed=31)
    with running_worker(settings, runtime="faust"):
        events = audit_events(settings, topology, sum(produced.values()), timeout=120)
    shared = [e for e in events if e["status"] == "shared"]
    assert shared and len(shared) < len(events)  # withheld and invalid records are in the audit too
    with running_index(settings):
        index = SubjectIndex.of(settings)
        deliveries = _same_as_the_audit(index, events)
        assert deliveries == sum(len(e["recipients"]) for e in shared)
        scraped = _metrics(settings)
        assert scraped["jointuse_index_events_total"] == len(events)
        assert [v for k, v in scraped.items() if k.startswith("jointuse_index_lag_events{")] == [0.0] * 3

        # The report, from the index and from the whole audit topic, on the same run.
        keys, reached = settings.subject_keys(), _subjects(shared)
        customer = next(
            c for c in customers_of(generated_lines(150, seed=31)["jcom"]) if keys.subject("jcom", c) in reached
        )
        args = ["rights", "report", customer, "--source", "jcom", "--format", "json", "--verified-by", "運転免許証"]
        from_index = json.loads(run_cli(args, settings).stdout)
        from_audit = json.loads(run_cli([*args, "--from-audit"], settings).stdout)
        assert from_index["read_from"] == "index" and from_audit["read_from"] == "audit"
        assert from_index["index_behind"] == {}
        assert from_index["disclosures"] == from_audit["disclosures"] != []
        table = run_cli(
            ["rights", "report", customer, "--source", "jcom", "--verified-by", "運転免許証"], settings
        ).stdout
        assert "jcom-insurance" in table and "may be missing" not in table
        assert table.splitlines()[0] == "requested by: subject; identity verified by: 運転免許証"
        assert from_index["requester"] == {
            "filed_by": "subject",
            "identity_verified_by": "運転免許証",
            "authority": "",
            "subject_is_minor": False,
        }


def test_a_killed_index_worker_loses_no_row_and_counts_nothing_twice(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    settings = with_index(kafka.model_copy(update={"topic_prefix": f"j{unique}"}), str(tmp_path))
    topology = setup_topics(settings, partitions=2)
    first = produce_generated(settings, 400, seed=32)
    with running_worker(settings, runtime="faust"):
        audit_events(settings, topology, sum(first.values()), timeout=120)
        process = start_index(settings)
        try:
            # Killed halfway through the history: rows written, their offsets committed or not yet.
            half = sum(first.values()) // 2
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and int(SubjectIndex.of(settings).status().get("applied") or 0) < half:
                time.sleep(0.05)
            killed_status = SubjectIndex.of(settings).status()
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        finally:
            stop_worker(process)
        second = produce_generated(settings, 300, seed=33)
        expected = sum(first.values()) + sum(second.values())
        messages = read_topic(settings, topology.audit, expected=expected, timeout=120)
    events = [json.loads(m.value() or b"") for m in messages]
    positions = [(m.partition(), m.offset()) for m in messages]
    # A new state directory: the rows come back from the changelog alone.
    restarted = with_index(settings, str(tmp_path / "restarted"))
    with running_index(restarted):
        index = SubjectIndex.of(restarted)
        deliveries = _same_as_the_audit(index, events, positions, killed_status=killed_status)
    assert deliveries == sum(len(e["recipients"]) for e in events if e["status"] == "shared")


def test_index_workers_joining_and_leaving_while_busy_lose_no_event(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    """Rebalances while a worker is folding: a second index worker joins halfway through the history
    and leaves again (SIGTERM, then the first is paused past its session timeout with SIGSTOP). faust
    skips the messages it read before each rebalance; none of them may be committed unapplied."""
    settings = with_index(kafka.model_copy(update={"topic_prefix": f"r{unique}"}), str(tmp_path / "first"))
    topology = setup_topics(settings, partitions=4)
    produced = produce_generated(settings, 900, seed=34)
    with running_worker(settings, runtime="faust"):
        events = audit_events(settings, topology, sum(produced.values()), timeout=180)
    first = start_index(settings)
    try:
        deadline = time.monotonic() + 60
        index = SubjectIndex.of(settings)
        while time.monotonic() < deadline and int(index.status().get("applied") or 0) < len(events) // 4:
            time.sleep(0.05)
        second_settings = with_index(settings, str(tmp_path / "second"))
        second = start_index(second_settings)
        try:
            time.sleep(8)  # joins: both rebalance while the first is folding
        finally:
            stop_worker(second)  # leaves: the first is given every partition again
        first.send_signal(signal.SIGSTOP)  # past its session timeout: a new member of the group later
        time.sleep(12)
        first.send_signal(signal.SIGCONT)
        time.sleep(5)
    finally:
        first.send_signal(signal.SIGCONT)
        stop_worker(first)
    # A new state directory: the rows come back from the changelog, the rest from the committed offsets.
    restarted = with_index(settings, str(tmp_path / "restarted"))
    with running_index(restarted):
        deliveries = _same_as_the_audit(SubjectIndex.of(restarted), events)
    assert deliveries == sum(len(e["recipients"]) for e in events if e["status"] == "shared")


def test_a_correction_shows_per_recipient_until_the_corrected_record_is_delivered(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    from streams.devtools.synthetic import to_line
    from streams.kafka.company_client import produce_lines
    from tests.rights.test_rights_e2e import _jcom_records

    settings = with_index(kafka.model_copy(update={"topic_prefix": f"c{unique}"}), str(tmp_path))
    topology = setup_topics(settings, partitions=2)
    (record,) = _jcom_records(1, seed=34)
    customer = record["customer_id"]
    args = [
        "rights",
        "report",
        customer,
        "--source",
        "jcom",
        "--format",
        "json",
        "--wait",
        "20",
        "--verified-by",
        "運転免許証",
    ]

    def report() -> dict[str, Any]:
        return dict(json.loads(run_cli(args, settings).stdout))

    with running_worker(settings, runtime="faust"), running_index(settings):
        produce_lines(settings, "jcom", [to_line(record).encode()])
        audit_events(settings, topology, 1, timeout=90)
        out = run_cli(
            ["rights", "request", customer, "--source", "jcom", "--correct", "--verified-by", "運転免許証"], settings
        ).stdout
        assert out.startswith("filed correction ")
        deadline = time.monotonic() + 30
        while not (corrections := report()["corrections"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        (correction,) = corrections
        assert correction["not_yet_delivered_to"] == ["jcom-insurance"] and correction["delivered_to"] == []

        # The source republishes the corrected record; the pipeline delivers it.
        produce_lines(settings, "jcom", [to_line(record).encode()])
        audit_events(settings, topology, 2, timeout=90)
        deadline = time.monotonic() + 30
        while report()["corrections"][0]["delivered_to"] != ["jcom-insurance"] and time.monotonic() < deadline:
            time.sleep(0.5)
        final = report()
    assert final["corrections"][0]["delivered_to"] == ["jcom-insurance"]
    assert final["corrections"][0]["not_yet_delivered_to"] == []
    assert final["disclosures"][0]["deliveries"] == 2


def _metrics(settings: Settings) -> dict[str, float]:
    """The index worker's /metrics samples, by name and labels."""
    import urllib.request

    context = settings.index_client_context() if settings.index_scheme() == "https" else None
    with urllib.request.urlopen(f"{settings.index_url}/metrics", timeout=10, context=context) as response:
        text = response.read().decode()
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines() if not line.startswith("#"))
        if name
    }
