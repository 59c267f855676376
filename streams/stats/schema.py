"""The Avro schema every statistics table is published in (``<schemas>/statistics/``): the stats
worker writes with it, the catalog documents it, recipients read with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.errors import SchemaError

STATS_TABLE_SCHEMA = "statistics/stats_table.v1.avsc"


def load_stats_schema(directory: Path) -> dict[str, Any]:
    """The schema every statistics table is published in (``<schemas>/statistics/``)."""
    path = directory / STATS_TABLE_SCHEMA
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read the schema ({exc.__class__.__name__})") from exc
    return raw
