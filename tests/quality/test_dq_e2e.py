"""Data quality on the real broker: `dq run` on clean and dirty ranges, and in-worker metrics."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from streams.devtools.processes import start_worker, stop_worker
from streams.devtools.synthetic import Generator, Mix, to_line
from streams.kafka.company_client import produce_lines
from streams.settings import Settings
from tests.cli.helpers import run_cli
from tests.observability.test_prometheus_e2e import free_port
from tests.runtime.helpers import audit_events, setup_topics

pytestmark = pytest.mark.kafka
CLEAN = Mix(invalid=0.0)


def _lines(count: int, seed: int, company: str) -> list[dict[str, object]]:
    return [
        r
        for _, r in Generator(seed=seed, mix=CLEAN).records(count)
        if isinstance(r, dict) and r["source_company"] == company
    ]


def test_dq_run_passes_on_clean_data_and_fails_on_dirty_data(kafka: Settings, unique: str, tmp_path: Path) -> None:
    settings = kafka.model_copy(update={"topic_prefix": f"d{unique}"})
    topology = setup_topics(settings, partitions=1)
    clean = _lines(400, 51, "jcom")
    produce_lines(settings, "jcom", [to_line(r).encode() for r in clean])
    ingest = topology.ingest("jcom")

    docs = tmp_path / "docs"
    ok = run_cli(["dq", "run", "--topic", ingest, "--docs", str(docs)], settings, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"jointuse_ingest on {len(clean)} records" in ok.stdout and "FAILED" not in ok.stdout
    assert (docs / "index.html").is_file()

    dirty = [dict(r) for r in _lines(40, 52, "jcom")]
    dirty[0]["email"] = "SECRET-no-at-sign"
    dirty[1]["phone"] = "+81 3 1234 5678"
    produce_lines(settings, "jcom", [to_line(r).encode() for r in dirty])
    bad = run_cli(["dq", "run", "--topic", ingest, "--from-offset", str(len(clean)), "--json"], settings, check=False)
    assert bad.returncode == 1, bad.stderr
    result = json.loads(bad.stdout)
    assert result["rows"] == len(dirty) and not result["success"]
    assert {(f["expectation"], f["column"]) for f in result["failures"]} == {
        ("expect_column_values_to_match_regex", "email"),
        ("expect_column_values_to_match_regex", "phone"),
    }
    text = run_cli(["dq", "run", "--topic", ingest], settings, check=False)
    assert text.returncode == 1 and "FAILED expect_column_values_to_match_regex on email" in text.stdout
    assert "SECRET" not in text.stdout + bad.stdout
    for page in (tmp_path / "docs").rglob("*.html"):
        assert "SECRET" not in page.read_text(encoding="utf-8")


def test_worker_exports_data_quality_metrics_and_deliveries_pass(kafka: Settings, unique: str) -> None:
    port = free_port()
    settings = kafka.model_copy(
        update={"topic_prefix": f"w{unique}", "metrics_port": port, "dq_sample_rate": 1.0, "dq_batch_size": 100}
    )
    topology = setup_topics(settings, partitions=2)
    records = _lines(600, 53, "jcom")
    produce_lines(settings, "jcom", [to_line(r).encode() for r in records])
    worker = start_worker(settings, "dq0", runtime="faust")
    try:
        audit_events(settings, topology, len(records), timeout=120)
        deadline, text = time.monotonic() + 120, ""
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                text = ""
            passed = re.findall(r'jointuse_dq_batches_total\{result="passed",suite="jointuse_delivery"\} (\S+)', text)
            if passed and float(passed[0]) >= 1:
                break
            time.sleep(1)
        assert re.search(r'jointuse_dq_batches_total\{result="passed",suite="jointuse_ingest"\} [1-9]', text), text[
            -3000:
        ]
        assert re.search(r'jointuse_dq_batches_total\{result="passed",suite="jointuse_delivery"\} [1-9]', text)
        assert re.search(r"jointuse_dq_sampled_records_total [1-9]", text)
        assert "jointuse_dq_expectation_failures_total{" not in text
    finally:
        stop_worker(worker)
    delivery = run_cli(["dq", "run", "--topic", topology.deliver("jcom-insurance")], settings, check=False)
    assert delivery.returncode == 0, delivery.stdout + delivery.stderr
    assert "jointuse_delivery on" in delivery.stdout
