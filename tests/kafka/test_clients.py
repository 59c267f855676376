"""Every consumer of the project reads committed records only (a record of a producer's aborted
transaction was never published), and every one is built in one place."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.kafka import clients
from streams.settings import PROJECT_ROOT, Settings

STREAMS = PROJECT_ROOT / "streams"


def _calls(path: Path, name: str) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called == name:
                out.append(node.lineno)
    return out


def test_consumers_are_built_only_by_the_clients_module() -> None:
    for path in STREAMS.rglob("*.py"):
        if path == STREAMS / "kafka" / "clients.py":
            continue
        for name in ("Consumer", "AIOKafkaConsumer", "DeserializingConsumer"):
            assert not _calls(path, name), f"{path.relative_to(PROJECT_ROOT)} builds a {name} itself"


def test_every_faust_app_reads_committed_records_only() -> None:
    for path in STREAMS.rglob("*.py"):
        if _calls(path, "App"):
            assert _calls(path, "use_committed_reads"), f"{path.relative_to(PROJECT_ROOT)}: a faust app without it"


def test_the_clients_module_s_consumers_read_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(clients, "Consumer", lambda conf: built.append(conf))
    kafka = Settings().kafka_common()
    clients.group_consumer(kafka, "g")
    clients.reading_consumer(kafka, "r")
    clients.reading_consumer(kafka, "r", partition_eof=True, fetch_wait_ms=5, auto_commit=True, from_beginning=False)
    assert len(built) == 3
    assert all(conf["isolation.level"] == "read_committed" for conf in built)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _failing(codes: list[int], result: str = "answer") -> Any:
    def operation() -> str:
        if codes:
            raise KafkaException(KafkaError(codes.pop(0)))
        return result

    return operation


@pytest.mark.parametrize(
    "code",
    [KafkaError._DESTROY_BROKER, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR],
)
def test_an_operation_is_tried_again_while_a_node_is_down(code: int) -> None:
    clock = _Clock()
    answer = clients.patiently(_failing([code, code]), what="reading", clock=clock, sleep=clock.sleep)
    assert answer == "answer"
    assert clock.now == 2.0


def test_patience_ends_with_the_last_error() -> None:
    clock = _Clock()
    with pytest.raises(KafkaException) as raised:
        clients.patiently(
            _failing([KafkaError._DESTROY_BROKER] * 100),
            what="reading",
            patience_s=10,
            clock=clock,
            sleep=clock.sleep,
        )
    assert raised.value.args[0].code() == KafkaError._DESTROY_BROKER
    assert clock.now == 10.0


@pytest.mark.parametrize(
    "error",
    [
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
        KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART),
        KafkaError(KafkaError._TRANSPORT),
        KafkaError(KafkaError._ALL_BROKERS_DOWN),
        KafkaError(KafkaError.LEADER_NOT_AVAILABLE, fatal=True),
    ],
)
def test_an_error_the_cluster_does_not_recover_from_is_raised_at_once(error: KafkaError) -> None:
    clock = _Clock()
    attempts = []

    def operation() -> None:
        attempts.append(1)
        raise KafkaException(error)

    with pytest.raises(KafkaException):
        clients.patiently(operation, what="reading", clock=clock, sleep=clock.sleep)
    assert len(attempts) == 1
    assert clock.now == 0.0
