"""Shared fixtures. Tests marked ``kafka`` use the cluster named by JOINTUSE_BOOTSTRAP_SERVERS /
JOINTUSE_SCHEMA_REGISTRY_URL, or the local one that ``make test`` starts. Pure tests never touch it:
the broker fixtures are lazy (created on first use) and session-scoped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.policy.classification import ClassifiedSchema, load_schema
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet, load_policies
from streams.settings import PROJECT_ROOT, Settings, load_settings

# Several workers run at once in the tests: each takes a free port for its endpoints.
os.environ.setdefault("JOINTUSE_METRICS_PORT", "0")
# Without a cluster named in the environment, the tests use the local broker as its admin principal.
_LOCAL = Path(__file__).resolve().parent.parent / ".local"
if "JOINTUSE_BOOTSTRAP_SERVERS" not in os.environ and (_LOCAL / "kafka" / "admin.password").is_file():
    os.environ.update(
        JOINTUSE_SECURITY_PROTOCOL="SASL_SSL",
        JOINTUSE_SSL_CA_FILE=str(_LOCAL / "tls" / "ca.pem"),
        JOINTUSE_SASL_MECHANISM="SCRAM-SHA-512",
        JOINTUSE_SASL_USERNAME="admin",
        JOINTUSE_SASL_PASSWORD_FILE=str(_LOCAL / "kafka" / "admin.password"),
        JOINTUSE_SCHEMA_REGISTRY_URL="https://localhost:18081/apis/ccompat/v7",
        JOINTUSE_SCHEMA_REGISTRY_CA_FILE=str(_LOCAL / "tls" / "ca.pem"),
    )

# The audit pseudonym key: the checkout's (infra/local.sh makes it), or one for this test session.
if "JOINTUSE_SUBJECT_KEY" not in os.environ and "JOINTUSE_SUBJECT_KEY_FILE" not in os.environ:
    os.environ["JOINTUSE_SUBJECT_KEY"] = "test-session-key-" + uuid.uuid4().hex

SCHEMA_PATH = PROJECT_ROOT / "schemas" / "customer_record.v1.avsc"
POLICY_PATH = PROJECT_ROOT / "policies" / "jcom-group.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test not marked ``kafka`` is a ``unit`` test."""
    for item in items:
        if item.get_closest_marker("kafka") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def schema() -> ClassifiedSchema:
    return load_schema(SCHEMA_PATH)


@pytest.fixture(scope="session")
def policies() -> PolicySet:
    return load_policies(POLICY_PATH)


@pytest.fixture(scope="session")
def engine(schema: ClassifiedSchema, policies: PolicySet) -> Engine:
    return Engine(schema, policies)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Iterator[Settings]:
    """The cluster, checked once: a test that needs it fails clearly if it is down."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_common())
    try:
        before = set(admin.list_topics(timeout=15).topics)
    except Exception as exc:  # pragma: no cover - only when the broker is down
        pytest.fail(f"no Kafka broker at {settings.bootstrap_servers} ({exc}); run `make infra-up`")
    yield settings
    if os.environ.get("KEEP_TEST_TOPICS") != "1":  # kept to read a failed run's topics afterwards
        _delete_topics_of_this_session(admin, before)


def _delete_topics_of_this_session(admin: Any, before: set[str]) -> None:
    """Each test makes its own topics. Left behind, they add up over runs on one broker (thousands of
    partitions) until its heap runs out; seen after a few runs on a developer's checkout.

    Only this session's topics go: those named with a suffix ``new_suffix`` gave out here. Another test
    session may be running on the same broker (a crash-test loop next to a full run), and deleting
    whatever appeared meanwhile once took its topics away mid-test."""
    appeared = set(admin.list_topics(timeout=15).topics) - before
    made = sorted(t for t in appeared if any(suffix in t for suffix in _ISSUED))
    for start in range(0, len(made), 200):
        for future in admin.delete_topics(made[start : start + 200], operation_timeout=60).values():
            try:
                future.result(timeout=120)
            except Exception:
                continue


_ISSUED: set[str] = set()  # every suffix ``new_suffix`` gave out in this session


def new_suffix() -> str:
    """A suffix for topic names and group ids, whose topics this session deletes at its end."""
    suffix = uuid.uuid4().hex[:12]
    _ISSUED.add(suffix)
    return suffix


@pytest.fixture
def unique() -> str:
    """A per-test suffix for topic names and group ids."""
    return new_suffix()


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
