"""The pipeline's faust app, made from the settings it is given: its agents and the hook that tells
its loops of revoked partitions; nothing reaches a broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from streams.app import PipelineAgents, build_pipeline_app
from streams.runtime.faust_internals import WholeFetchTransport
from streams.settings import Guarantee, Settings

pytestmark = pytest.mark.unit


def _settings(settings: Settings, tmp_path: Path, **update: Any) -> Settings:
    return settings.model_copy(update={"data_dir": tmp_path / "worker", **update})


def test_the_app_is_made_from_the_settings_it_is_given(settings: Settings, tmp_path: Path) -> None:
    app = build_pipeline_app(_settings(settings, tmp_path, topic_prefix="made", batch_size=7), "w9")
    assert app.conf.id == "made.pipeline" and app.conf.broker_max_poll_records == 7
    assert set(app.agents) == {"streams.app.pipeline", "streams.app.erasure"}
    assert isinstance(app.transport, WholeFetchTransport)
    topics = {topic for agent in app.agents.values() for topic in agent.channel.topics}
    assert "made.rights.v1" in topics and all(topic.startswith("made.") for topic in topics)
    assert (tmp_path / "worker").is_dir()


def test_two_apps_in_one_process_share_no_state(settings: Settings, tmp_path: Path) -> None:
    first = PipelineAgents(_settings(settings, tmp_path, topic_prefix="one"), "w1")
    second = PipelineAgents(_settings(settings, tmp_path, topic_prefix="two", guarantee=Guarantee.AT_LEAST_ONCE), "w2")
    assert first.app is not second.app and first.worker is not second.worker
    assert first.names.transactional_id == "one.pipeline.w1" and second.names.transactional_id == "two.pipeline.w2"
    assert first.worker.exactly_once and not second.worker.exactly_once


class _Loop:
    def __init__(self) -> None:
        self.revoked: list[set[tuple[str, int]]] = []

    async def revoke(self, partitions: set[tuple[str, int]]) -> None:
        self.revoked.append(partitions)


class _Batches:
    def __init__(self) -> None:
        self.forgotten: list[set[tuple[str, int]]] = []

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        self.forgotten.append(partitions)


def test_a_revocation_reaches_the_batches_and_every_loop(settings: Settings, tmp_path: Path) -> None:
    agents = PipelineAgents(_settings(settings, tmp_path), "w0")
    loops, batches = [_Loop(), _Loop()], _Batches()
    agents.worker.loops.extend(loops)  # type: ignore[arg-type]
    agents.batches = batches  # type: ignore[assignment]
    asyncio.run(agents.app.on_partitions_revoked.send({TP("jointuse.ingest.jcom.customer.v1", 3)}))
    expected = {("jointuse.ingest.jcom.customer.v1", 3)}
    assert batches.forgotten == [expected] and all(loop.revoked == [expected] for loop in loops)
