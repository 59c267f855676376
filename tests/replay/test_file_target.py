"""The replay's file target as a transport of the core loop, without a broker: a batch is committed
when the file is synced and the checkpoint replaced; an aborted or interrupted batch leaves nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from streams.errors import ConfigError
from streams.messages import OutMessage
from streams.replay.replay import FILE_TOPIC, _FileTransport
from streams.settings import Settings


def _transport(path: Path, replay_id: str = "r1") -> _FileTransport:
    settings = Settings()
    replayer = SimpleNamespace(id=replay_id, target=SimpleNamespace(path=path), settings=settings)
    return _FileTransport(replayer)  # type: ignore[arg-type]


def _batch(transport: _FileTransport, lines: list[str], offset: int, *, commit: bool = True) -> None:
    async def steps() -> None:
        await transport.begin()
        await transport.write([OutMessage(FILE_TOPIC, None, f"{line}\n".encode(), []) for line in lines])
        await transport.send_offsets({("t", 0): offset}, None)
        if commit:
            await transport.commit()

    asyncio.run(steps())


def _checkpoint(path: Path) -> dict[str, object]:
    return dict(json.loads(path.with_name(path.name + ".checkpoint.json").read_text()))


def test_a_committed_batch_is_in_the_file_and_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    transport = _transport(path)
    assert transport.positions() == {}
    _batch(transport, ["a", "b"], 2)
    assert path.read_text() == "a\nb\n"
    assert _checkpoint(path) == {"replay_id": "r1", "offsets": {"0": 2}, "bytes": 4, "done": False}


def test_an_aborted_batch_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    transport = _transport(path)
    transport.positions()
    _batch(transport, ["a"], 1)
    _batch(transport, ["b", "c"], 3, commit=False)
    asyncio.run(transport.abort())
    assert path.read_text() == "a\n"
    _batch(transport, ["b", "c"], 3)  # written again, as the loop does
    assert path.read_text() == "a\nb\nc\n" and _checkpoint(path)["offsets"] == {"0": 3}


def test_an_interrupted_run_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    first = _transport(path)
    first.positions()
    _batch(first, ["a"], 1)
    _batch(first, ["b"], 2, commit=False)  # the process dies before the commit
    again = _transport(path)
    assert again.positions() == {0: 1}
    assert path.read_text() == "a\n"  # the uncommitted line is gone; it is written again


def test_a_file_of_another_replay_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    first = _transport(path, "r1")
    first.positions()
    _batch(first, ["a"], 1)
    with pytest.raises(ConfigError, match="another replay"):
        _transport(path, "r2").positions()
