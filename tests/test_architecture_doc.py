"""docs/architecture.md stays true: every path it names exists, and its layer diagram is the one the
layer test enforces (tests/layers.py)."""

from __future__ import annotations

import re

from streams.settings import PROJECT_ROOT
from tests.layers import CORE, LAYERS

DOC = PROJECT_ROOT / "docs" / "architecture.md"
PATH = re.compile(r"(?<![\w/.])((?:streams|tests|docs|bench|infra|policies|schemas)/[\w./-]*\w)")


def _diagram() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("```", 2)[1]
    return [line for line in section.splitlines() if line.strip()]


def test_every_path_the_architecture_names_exists() -> None:
    named = set(PATH.findall(DOC.read_text(encoding="utf-8")))
    assert len(named) > 30  # the check reads the document at all
    missing = sorted(p for p in named if not (PROJECT_ROOT / p).exists())
    assert missing == []


def test_the_layer_diagram_is_the_enforced_one() -> None:
    rows = []
    for line in _diagram():
        if line.startswith(" ─"):
            break
        packages = re.split(r"\s{2,}", line.strip())[0]  # the first column; the second says what it is
        rows.append(tuple(name.strip() for name in packages.split("·")))
    assert rows == list(reversed(LAYERS))
    core_text = " ".join(_diagram())
    assert all(f"streams/{entry}" in core_text for entry in CORE)
