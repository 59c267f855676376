"""The CLI runs a faust app in its own process: the app built from the settings first (a bad one is
exit 2), then a broker asked for (none is exit 3), then faust's worker, with no process between."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from streams.cli.launch import run_faust_app
from streams.errors import ClusterError, ConfigError
from streams.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    taken: list[Any] = []

    def reachable(settings: Settings) -> None:
        taken.append("broker")

    def run_worker(app: object, *, log_level: str) -> None:
        taken.append(("run", app, log_level))
        raise SystemExit(0)

    monkeypatch.setattr("streams.kafka.company_client.ensure_reachable", reachable)
    monkeypatch.setattr("streams.runtime.faust_app.run_worker", run_worker)
    return taken


def test_the_app_built_runs_in_this_process_once_a_broker_answered(settings: Settings, steps: list[Any]) -> None:
    app = object()

    def build() -> Any:
        steps.append("build")
        return app

    with pytest.raises(SystemExit):
        run_faust_app("the app", settings, build, log_level="info")
    assert steps == ["build", "broker", ("run", app, "info")]


def test_a_configuration_it_cannot_use_is_exit_2_before_any_broker(
    settings: Settings, steps: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def build() -> Any:
        raise ConfigError("JOINTUSE_INDEX_TOKEN_FILE: cannot read it")

    with pytest.raises(typer.Exit) as ended:
        run_faust_app("the app", settings, build, log_level="warn")
    assert ended.value.exit_code == 2 and steps == []
    assert capsys.readouterr().err == "jointuse: the app cannot start: JOINTUSE_INDEX_TOKEN_FILE: cannot read it\n"


def test_no_broker_is_exit_3_and_faust_never_starts(
    settings: Settings, steps: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(settings: Settings) -> None:
        raise ClusterError("the cluster did not answer")

    monkeypatch.setattr("streams.kafka.company_client.ensure_reachable", unreachable)
    with pytest.raises(typer.Exit) as ended:
        run_faust_app("the app", settings, object, log_level="warn")
    assert ended.value.exit_code == 3 and steps == []
