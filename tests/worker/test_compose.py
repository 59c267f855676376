"""One worker composition: both runtimes stop with the same exit code for the same cause."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.errors import (
    ClusterError,
    ConfigError,
    Exit,
    FatalError,
    PolicyError,
    RegistryError,
    SchemaError,
    SubjectIndexUnavailable,
    exit_code_of,
)
from streams.settings import Settings

RUNTIMES = ["faust", "confluent"]


def test_a_cause_maps_to_the_documented_exit_code() -> None:
    assert exit_code_of(ConfigError("no audit key")) == Exit.USAGE == 2
    assert exit_code_of(PolicyError("bad", source="p.yaml")) == 2
    assert exit_code_of(SchemaError("unclassified")) == 2
    for service in (ClusterError("no broker"), RegistryError("no registry"), SubjectIndexUnavailable("behind")):
        assert exit_code_of(service) == Exit.SERVICE == 3
    assert exit_code_of(FatalError("fenced")) == Exit.FATAL == 70


def _worker(
    runtime: str, env: dict[str, str], *, unset: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in {**os.environ, **env}.items() if name != unset}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "worker", "--runtime", runtime, "--worker-id", "compose-0"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_missing_policy_file_exits_2_on_both_runtimes(runtime: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-policy.yaml"
    ended = _worker(runtime, {"JOINTUSE_POLICY_PATH": str(missing), "JOINTUSE_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert ended.returncode == 2, ended.stderr
    assert str(missing) in ended.stderr and "Traceback" not in ended.stderr


@pytest.mark.kafka
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_missing_audit_key_exits_2_on_both_runtimes(kafka: Settings, unique: str, runtime: str) -> None:
    """A setting, found once the runtime has reached the broker: still 2, not 3."""
    settings = kafka.model_copy(update={"topic_prefix": f"k{unique}"})
    ended = _worker(runtime, settings.worker_env(), unset="JOINTUSE_AUDIT_KEY_FILE")
    assert ended.returncode == 2, ended.stderr[-2000:]
    assert "JOINTUSE_AUDIT_KEY_FILE" in ended.stderr and "Traceback" not in ended.stderr
