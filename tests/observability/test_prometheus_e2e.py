"""A real Prometheus (Debian's package) scrapes a worker during an end-to-end run; its HTTP API must
then hold the expected series and values."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.devtools.processes import start_worker, stop_worker
from streams.devtools.synthetic import Mix
from streams.settings import Settings
from tests.local_tools import local_tool
from tests.runtime.helpers import audit_events, produce_generated, setup_topics

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for(port: int, promql: str, check: Any, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            result = query(port, promql)
        except OSError:
            result = []
        if check(result):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{promql} never satisfied the check; last result {result}")


def test_prometheus_scrapes_the_worker(kafka: Settings, unique: str, tmp_path: Path) -> None:
    binary = local_tool("prometheus")
    metrics_port, prometheus_port = free_port(), free_port()
    settings = kafka.model_copy(update={"topic_prefix": f"m{unique}", "metrics_port": metrics_port})
    topology = setup_topics(settings, partitions=2)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: jointuse-worker\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n",
        encoding="utf-8",
    )
    prometheus = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = start_worker(settings, "prom-0")
    try:
        total = sum(produce_generated(settings, 1_000, seed=31, mix=Mix(invalid=0.05)).values())
        events = audit_events(settings, topology, total)
        delivered = {c: sum(1 for e in events if c in e["recipients"]) for c in ("jcom", "jcom-insurance")}
        dead = {}
        for event in events:
            if event["status"] == "invalid":
                dead[event["reason"]] = dead.get(event["reason"], 0) + 1
        assert dead, "the mix should hold invalid records"

        wait_for(prometheus_port, 'up{job="jointuse-worker"}', lambda r: r and r[0]["value"][1] == "1")
        wait_for(prometheus_port, "sum(jointuse_records_in_total)", lambda r: r and float(r[0]["value"][1]) == total)
        for recipient, count in delivered.items():
            wait_for(
                prometheus_port,
                f'sum(jointuse_deliveries_total{{recipient="{recipient}"}})',
                lambda r, count=count: r and float(r[0]["value"][1]) == count,
            )
        for reason, count in dead.items():
            wait_for(
                prometheus_port,
                f'sum(jointuse_dead_letters_total{{reason="{reason}"}})',
                lambda r, count=count: r and float(r[0]["value"][1]) == count,
            )
        wait_for(prometheus_port, "sum(jointuse_leak_canary_total)", lambda r: r and float(r[0]["value"][1]) == 0)
        wait_for(prometheus_port, 'jointuse_policy_info{version="2026-01"}', lambda r: len(r) == 1)

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5) as response:
            assert json.load(response) == {
                "ready": True,
                "checks": {
                    "partitions_assigned": True,
                    "broker": True,
                    "schema_registry": True,
                    "rights_view": True,
                    "transactions_commit": True,
                },
            }
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        stop_worker(worker)
        prometheus.terminate()
        prometheus.wait(30)
