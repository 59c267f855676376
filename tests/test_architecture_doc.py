"""docs/architecture.md stays true: every path it names exists, and its layer diagram names every
folder of the core (the rows above the rule are the layers themselves: tests/layers.py reads them)."""

from __future__ import annotations

import re

from streams.settings import PROJECT_ROOT
from tests.layers import DIAGRAM, core_folders

PATH = re.compile(r"(?<![\w/.])((?:streams|tests|docs|bench|infra|policies|schemas)/[\w./-]*\w)")


def test_every_path_the_architecture_names_exists() -> None:
    named = set(PATH.findall(DIAGRAM.read_text(encoding="utf-8")))
    assert len(named) > 30  # the check reads the document at all
    missing = sorted(p for p in named if not (PROJECT_ROOT / p).exists())
    assert missing == []


def test_the_layer_diagram_names_every_features_core() -> None:
    diagram = DIAGRAM.read_text(encoding="utf-8").split("## Layers", 1)[1].split("```", 2)[1]
    under_the_rule = diagram.split("─\n", 1)[1]
    named = re.findall(r"\b([a-z_]+/core)\b", under_the_rule)
    assert named == core_folders()
