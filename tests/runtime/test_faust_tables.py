"""The faust apps that keep tables: each deployment's stores in their own directory, and offsets
committed past the commit markers of the transactions they read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.runtime.faust_tables import changelog_before_offsets, table_app
from streams.settings import Settings

pytestmark = pytest.mark.unit


def test_two_topic_prefixes_never_share_a_table_store(settings: Settings, tmp_path: Path) -> None:
    # faust names a store by its table alone; a store of another prefix's changelog would be taken
    # for this one's, with offsets past its end, and its rows kept.
    first = table_app(settings, "demo1.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    second = table_app(settings, "demo2.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    assert first.conf.tabledir != second.conf.tabledir
    assert Path(first.conf.tabledir).is_relative_to(tmp_path)


def test_a_commit_moves_past_every_transaction_marker_acknowledged_so_far(settings: Settings, tmp_path: Path) -> None:
    """Messages at 10, 11, 13, 14, 16 (commit markers at 12 and 15), all acknowledged: one commit
    covers them all. Without the fix faust commits up to 12, then 15, then 17, one per interval."""
    from faust.types import TP

    app = table_app(settings, "markers.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    consumer = app.consumer
    tp = TP("contributions", 0)

    async def read_and_acknowledge() -> None:
        last = None
        for offset in (10, 11, 13, 14, 16):
            if last is not None and offset - last > 1:
                await consumer._add_gap(tp, last + 1, offset)  # as faust's fetcher calls it
            consumer._acked[tp].append(offset)
            consumer._acked_index[tp].add(offset)
            last = offset

    asyncio.run(read_and_acknowledge())
    assert consumer._new_offset(tp) == 17


def test_a_commit_waits_for_a_changelog_write_still_being_handed_to_the_client(
    settings: Settings, tmp_path: Path
) -> None:
    """The buffer's sender takes a write out of its queue, then waits (aiokafka waits for room in a
    batch): the queue is empty, but the offsets of the write's event must not be committed yet."""
    from types import SimpleNamespace

    app = table_app(settings, "handover.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    committed: list[object] = []

    async def commit(offsets: object) -> bool:
        committed.append(offsets)
        return True

    async def nothing_in_the_client() -> None:
        return None

    app.consumer._commit = commit
    changelog_before_offsets(app)
    app.producer.flush = nothing_in_the_client
    room = asyncio.Event()

    class Channel:
        async def publish_message(self, fut: object, wait: bool) -> None:
            await room.wait()  # the client's batch is full

    async def scenario() -> None:
        handing_over = asyncio.create_task(
            app.producer.buffer._send_pending(SimpleNamespace(message=SimpleNamespace(channel=Channel())))
        )
        await asyncio.sleep(0)
        committing = asyncio.create_task(app.consumer._commit({"partition 0": 5}))
        await asyncio.sleep(0.05)
        assert app.producer.buffer.size == 0 and committed == []  # the queue is empty, the write not sent
        room.set()
        await asyncio.wait_for(committing, 5)
        await handing_over
        assert committed == [{"partition 0": 5}]

    asyncio.run(scenario())
