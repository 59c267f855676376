"""The statistics worker's faust app, made from the settings it is given; a revocation sends the
worker back to its tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.types import TP

from streams.settings import Settings
from streams.stats.app import StatsCounter, build_stats_app

pytestmark = pytest.mark.unit


def _settings(settings: Settings, tmp_path: Path, prefix: str = "made") -> Settings:
    return settings.model_copy(update={"data_dir": tmp_path, "topic_prefix": prefix, "index_store": "memory"})


def test_the_app_is_made_from_the_settings_it_is_given(settings: Settings, tmp_path: Path) -> None:
    app = build_stats_app(_settings(settings, tmp_path))
    assert app.conf.id == "made.pipeline.stats"
    assert set(app.agents) == {"streams.stats.app.count"}
    assert {topic for agent in app.agents.values() for topic in agent.channel.topics} == {"made.stats-contributions.v1"}
    assert set(app.tables) == {"stats-subjects", "stats-published"}


def test_a_revocation_rebuilds_the_book_from_the_tables(settings: Settings, tmp_path: Path) -> None:
    counter = StatsCounter(_settings(settings, tmp_path, "revoked"))
    counter.rebuilt, counter.watermark_ms = True, 1_767_225_600_000
    before = counter.book
    asyncio.run(counter.app.on_partitions_revoked.send({TP("revoked.stats-contributions.v1", 0)}))
    assert (counter.rebuilt, counter.watermark_ms) == (False, 0)
    assert counter.book is not before and counter.book.grace == before.grace and not counter.book.windows
