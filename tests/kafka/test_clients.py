"""Every consumer of the project reads committed records only (a record of a producer's aborted
transaction was never published), and every one is built in one place."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

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
