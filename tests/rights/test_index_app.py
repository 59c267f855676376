"""The subject index's faust app, made from the settings it is given: its agents, pages and the
hook that forgets what was applied of a revoked partition."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.types import TP

from streams.rights.index_app import SubjectIndexWorker, build_index_app
from streams.settings import Settings

pytestmark = pytest.mark.unit


def _settings(settings: Settings, tmp_path: Path, prefix: str = "made") -> Settings:
    return settings.model_copy(
        update={"data_dir": tmp_path, "topic_prefix": prefix, "index_store": "memory", "index_port": 9499}
    )


def test_the_app_is_made_from_the_settings_it_is_given(settings: Settings, tmp_path: Path) -> None:
    app = build_index_app(_settings(settings, tmp_path))
    assert app.conf.id == "made.pipeline.index" and app.conf.web_port == 9499
    assert set(app.agents) == {"streams.rights.index_app.index", "streams.rights.index_app.index_corrections"}
    topics = {topic for agent in app.agents.values() for topic in agent.channel.topics}
    assert topics == {"made.audit.v1", "made.corrections.v1"}
    assert set(app.web.views) == {"/subjects/{subject}", "/metrics", "/index/status"}
    assert (tmp_path / "index-9499").is_dir()


def test_a_revoked_audit_partition_is_read_again_from_its_committed_offset(settings: Settings, tmp_path: Path) -> None:
    index = SubjectIndexWorker(_settings(settings, tmp_path, "revoked"))
    index.applied_next.update({0: 12, 1: 40})
    revoked = {TP("revoked.audit.v1", 0), TP("revoked.corrections.v1", 1)}
    asyncio.run(index.app.on_partitions_revoked.send(revoked))
    assert index.applied_next == {1: 40}
