"""The local cluster over TLS, as a group company meets it: SCRAM over TLS (every other broker test
runs so), certificate authentication (mTLS) on both runtimes and the faust apps, and each way a TLS
session fails told in one line with its exit code, in the commands and on both runtimes' starts."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

from streams.devtools.processes import start_index, start_stats, stop_worker
from streams.errors import SubjectIndexUnavailable
from streams.rights.index_client import SubjectIndex
from streams.settings import Settings
from tests.cli.helpers import run_offline
from tests.observability.test_prometheus_e2e import free_port
from tests.runtime.helpers import audit_events, produce_generated, running_worker, setup_topics, with_index
from tests.tls_certs import TestCA

pytestmark = pytest.mark.kafka


def _local_tls(kafka: Settings) -> Path:
    """The folder of the local CA and the admin's certificate (infra/local.sh makes them)."""
    if kafka.security_protocol != "SASL_SSL" or kafka.ssl_ca_file is None:
        pytest.fail('the broker tests run over TLS: `eval "$(infra/local.sh env)"` sets SASL_SSL and the CA')
    folder = kafka.ssl_ca_file.parent
    if not (folder / "ca.key").is_file():
        pytest.fail(f"the local CA's key is not in {folder}: these tests need the cluster `infra/local.sh up` starts")
    return folder


def _mtls(kafka: Settings, unique: str) -> Settings:
    """The admin principal by its client certificate, on the local broker's mTLS listener."""
    folder = _local_tls(kafka)
    return kafka.model_copy(
        update={
            "bootstrap_servers": f"127.0.0.1:{os.environ.get('JOINTUSE_KAFKA_MTLS_PORT', '19094')}",
            "security_protocol": "SSL",
            "ssl_cert_file": folder / "admin.pem",
            "ssl_key_file": folder / "admin.key",
            "sasl_username": None,
            "topic_prefix": f"m{unique}",
        }
    )


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**settings.worker_env(), **extra}


@pytest.mark.parametrize("runtime", ["faust", "confluent"])
def test_both_runtimes_share_over_certificate_authentication(kafka: Settings, unique: str, runtime: str) -> None:
    settings = _mtls(kafka, f"{unique}{runtime[0]}")
    topology = setup_topics(settings, partitions=2)
    produced = sum(produce_generated(settings, 300, seed=61).values())
    with running_worker(settings, runtime=runtime):
        events = audit_events(settings, topology, produced, timeout=120)
    assert len({(e["input"]["partition"], e["input"]["offset"], e["input"]["topic"]) for e in events}) == produced
    assert sum(1 for e in events if e["status"] == "shared") > produced // 2


def test_the_subject_index_and_the_statistics_worker_run_over_certificate_authentication(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    settings = with_index(_mtls(kafka, unique), str(tmp_path)).model_copy(
        update={"stats_metrics_port": free_port(), "stats_grace_seconds": 0}
    )
    topology = setup_topics(settings, partitions=2)
    produced = sum(produce_generated(settings, 200, seed=62).values())
    with running_worker(settings, runtime="confluent"):
        events = audit_events(settings, topology, produced, timeout=120)
    index, stats = start_index(settings), start_stats(settings)
    try:
        deadline = time.monotonic() + 120
        index_status: dict = {}
        stats_status = ""
        while time.monotonic() < deadline:
            index_status = SubjectIndex.of(settings).status()
            try:
                address = f"http://{settings.metrics_host}:{settings.stats_metrics_port}/status"
                with urllib.request.urlopen(address, timeout=5) as response:
                    stats_status = response.read().decode()
            except OSError:
                stats_status = ""
            if int(index_status.get("applied") or 0) >= len(events) and '"state": "counting"' in stats_status:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"over mTLS: the index said {index_status}, the statistics worker {stats_status!r}")
        # Lookups tell who received a person's data: HTTPS, and none without the credential.
        assert settings.index_url.startswith("https://") and settings.index_secret()
        subject = next(e["subject"] for e in events if e.get("subject"))
        assert SubjectIndex.of(settings).lookup(subject).row is not None
        anonymous = SubjectIndex(settings.index_url, context=settings.index_client_context())
        with pytest.raises(SubjectIndexUnavailable, match="answered 401"):
            anonymous.lookup(subject)
        with pytest.raises(SubjectIndexUnavailable):
            SubjectIndex(settings.index_url.replace("https:", "http:"), token=settings.index_secret()).lookup(subject)
    finally:
        stop_worker(index)
        stop_worker(stats)


def test_a_plaintext_client_is_refused_and_told_the_listener_speaks_tls(kafka: Settings) -> None:
    _local_tls(kafka)
    done = run_offline(["topics", "list"], env=_env(kafka, JOINTUSE_SECURITY_PROTOCOL="SASL_PLAINTEXT"))
    assert done.returncode == 3
    assert "speaks TLS" in _one_line(done.stderr)


@pytest.mark.parametrize("where", ["command", "faust", "confluent"])
def test_a_ca_that_did_not_sign_the_broker_is_one_line_on_both_runtimes_and_in_the_commands(
    kafka: Settings, unique: str, tmp_path: Path, where: str
) -> None:
    _local_tls(kafka)
    elsewhere = TestCA(tmp_path, "another CA")
    settings = kafka.model_copy(update={"ssl_ca_file": elsewhere.pem, "topic_prefix": f"w{unique}"})
    args = ["topics", "list"] if where == "command" else ["worker", "--runtime", where, "--worker-id", "w0"]
    done = run_offline(args, env=_env(settings), timeout=60)
    assert done.returncode == 3, done.stderr[-2000:]
    line = _one_line(done.stderr) if where == "command" else _last_line(done.stderr)
    assert "is not accepted" in line and "JOINTUSE_SSL_CA_FILE" in line


def _last_line(stderr: str) -> str:
    """A worker logs as JSON lines; the last says why it stopped, and no traceback comes."""
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.strip()][-1]


def test_an_expired_client_certificate_is_one_line_before_the_broker_refuses_it(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    """The broker answers an expired client certificate with "certificate unknown"; the client
    reads the dates of its own and says so first, in the commands and on both runtimes' starts."""
    folder = _local_tls(kafka)
    local = TestCA(tmp_path, existing=(folder / "ca.pem", folder / "ca.key"))
    expired = local.issue("admin-expired", client=True, expired=True)
    settings = _mtls(kafka, unique).model_copy(update={"ssl_cert_file": expired.cert, "ssl_key_file": expired.key})
    for args in (["topics", "list"], ["worker", "--runtime", "confluent"], ["worker", "--runtime", "faust"]):
        done = run_offline(args, env=_env(settings), timeout=60)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert "JOINTUSE_SSL_CERT_FILE: the certificate expired on" in _one_line(done.stderr)


def test_a_client_certificate_of_another_ca_is_refused_in_one_line(
    kafka: Settings, unique: str, tmp_path: Path
) -> None:
    elsewhere = TestCA(tmp_path, "another CA")
    stranger = elsewhere.issue("admin", client=True)
    settings = _mtls(kafka, unique).model_copy(update={"ssl_cert_file": stranger.cert, "ssl_key_file": stranger.key})
    done = run_offline(["topics", "list"], env=_env(settings), timeout=60)
    assert done.returncode == 3
    assert "refused the session" in _one_line(done.stderr)
    without = run_offline(["topics", "list"], env=_env(settings, JOINTUSE_SSL_CERT_FILE="", JOINTUSE_SSL_KEY_FILE=""))
    assert without.returncode == 3
    assert "may require a client certificate" in _one_line(without.stderr)


def test_a_wrong_key_password_is_one_line_naming_the_settings(kafka: Settings, unique: str, tmp_path: Path) -> None:
    folder = _local_tls(kafka)
    local = TestCA(tmp_path, existing=(folder / "ca.pem", folder / "ca.key"))
    locked = local.issue("admin", client=True, key_password="the-right-one")
    settings = _mtls(kafka, unique).model_copy(update={"ssl_cert_file": locked.cert, "ssl_key_file": locked.key})
    for args in (["topics", "list"], ["worker", "--runtime", "faust"], ["stats", "run"]):
        done = run_offline(args, env=_env(settings, JOINTUSE_SSL_KEY_PASSWORD="a-wrong-one"), timeout=60)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        line = _one_line(done.stderr)
        assert "JOINTUSE_SSL_KEY_PASSWORD" in line and "a-wrong-one" not in line
    # The right password opens it, and the broker takes the certificate (CN=admin).
    done = run_offline(["topics", "list"], env=_env(settings, JOINTUSE_SSL_KEY_PASSWORD="the-right-one"))
    assert done.returncode == 0, done.stderr[-2000:]
