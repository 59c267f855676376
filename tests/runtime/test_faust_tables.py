"""The faust apps that keep tables: each deployment's stores in their own directory, and offsets
committed past the commit markers of the transactions they read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.runtime.faust_tables import commits_past_transaction_markers, table_app
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

    commits_past_transaction_markers()
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
