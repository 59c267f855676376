"""The suites as kept in the repository (``dq/suites/*.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.policy.classification import ClassifiedSchema
from streams.policy.loader import PolicySet
from streams.quality.suites import delivery_suite, ingest_suite

KINDS = ("ingest", "delivery")


def generated(schema: ClassifiedSchema, policies: PolicySet) -> dict[str, dict[str, Any]]:
    return {"ingest": ingest_suite(schema, policies), "delivery": delivery_suite(schema, policies)}


def render(suite: dict[str, Any]) -> str:
    return json.dumps(suite, indent=2, ensure_ascii=False) + "\n"


def write_suites(folder: Path, suites: dict[str, dict[str, Any]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, suite in suites.items():
        path = folder / f"{kind}.json"
        path.write_text(render(suite), encoding="utf-8")
        paths.append(path)
    return paths


def load_suites(folder: Path) -> dict[str, dict[str, Any]]:
    return {kind: json.loads((folder / f"{kind}.json").read_text(encoding="utf-8")) for kind in KINDS}
