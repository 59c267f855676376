"""`jointuse demo`: its closing hints work in the mode they are printed in, and its output holds no
raw Kafka client log lines."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from streams.devtools.demo import STATE_FILE, closing_hints, demo_dir, run_demo, stop_kept
from streams.settings import PROJECT_ROOT, Settings
from tests.observability.test_prometheus_e2e import free_port


def test_a_stopped_demo_offers_no_command_that_needs_the_stack(settings: Settings) -> None:
    hints = "\n".join(closing_hints(settings, kept=False))
    assert "make demo KEEP=1" in hints
    assert "jointuse consume" not in hints and "curl" not in hints


@pytest.mark.kafka
def test_a_kept_demo_leaves_a_stack_its_hints_work_on(
    kafka: Settings, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = kafka.model_copy(update={"data_dir": tmp_path / "worker", "metrics_port": free_port()})
    code = run_demo(settings, count=400, seed=7, keep=True)
    kept = json.loads((demo_dir(settings) / STATE_FILE).read_text(encoding="utf-8"))
    try:
        output = capfd.readouterr()
        assert code == 0, output.out[-2000:]
        for raw in ("%4|", "%6|", "%3|", "NotEnoughReplicas", "ƒaµS†"):  # librdkafka lines, aiokafka, faust's banner
            assert raw not in output.out + output.err, raw
        hints = closing_hints(settings.model_copy(update={"topic_prefix": kept["prefix"]}), kept=True)
        assert hints == [line for line in output.out.splitlines() if line in hints]  # printed as returned
        commands = [hint.strip() for hint in hints if hint.startswith("  ")]
        assert len(commands) == 4
        result = subprocess.run(
            ["bash", "-c", " && ".join(commands)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.count('"jointuse-purposes"') == 3
        assert "jointuse_records_in_total{" in result.stdout
        assert "subscribers_by_region: 2026-02-23 to 2026-03-01, revision " in result.stdout
    finally:
        assert stop_kept(settings) == kept["prefix"]
    assert len(kept["pids"]) == 2  # the worker and the statistics worker
    for pid in kept["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert stop_kept(settings) is None
