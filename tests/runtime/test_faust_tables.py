"""The faust apps that keep tables: each deployment's stores in their own directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.runtime.faust_tables import table_app
from streams.settings import Settings

pytestmark = pytest.mark.unit


def test_two_topic_prefixes_never_share_a_table_store(settings: Settings, tmp_path: Path) -> None:
    # faust names a store by its table alone; a store of another prefix's changelog would be taken
    # for this one's, with offsets past its end, and its rows kept.
    first = table_app(settings, "demo1.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    second = table_app(settings, "demo2.stats", data_dir=tmp_path, log_name="stats", web_enabled=False)
    assert first.conf.tabledir != second.conf.tabledir
    assert Path(first.conf.tabledir).is_relative_to(tmp_path)
