"""The tools `make setup` fetches into .local/bin (infra/tools.sh): tests use these pinned ones, not
whatever a machine has on its PATH."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.settings import PROJECT_ROOT


def local_tool(name: str) -> str:
    directory = Path(os.environ.get("JOINTUSE_LOCAL_DIR", PROJECT_ROOT / ".local")) / "bin"
    path = directory / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} is missing from {directory}: run `make setup` (infra/tools.sh fetch builds it)")
    return str(path)
