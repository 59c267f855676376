"""Batches of records (JSON form) as pandas frames with a fixed set of columns."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from streams.quality.suites import AGE_COLUMN, POLICY_VERSION, PURPOSES, RECIPIENT


def _cell(value: Any) -> Any:
    # Nested values become JSON text: hashable (uniqueness checks) and comparable.
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, (dict, list)) else value


def _age(birth_date: Any, at: Any) -> float | None:
    try:
        born = dt.date.fromisoformat(str(birth_date))
        moment = dt.datetime.fromisoformat(str(at)).date() if at else dt.date.today()
    except ValueError:
        return None
    return (moment - born).days / 365.25


def _rows(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        row = {name: _cell(record.get(name)) for name in columns}
        row[AGE_COLUMN] = _age(record.get("birth_date"), record.get("updated_at")) if record.get("birth_date") else None
        rows.append(row)
    return rows


def ingest_frame(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """One row per input record; ``columns`` are the schema's top-level fields."""
    return pd.DataFrame(_rows(records, columns), columns=[*columns, AGE_COLUMN])


def delivery_frame(deliveries: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """One row per delivery: ``{"recipient", "purposes", "policy_version", "record"}``. Every schema
    field is a column, delivered or not, so that a protected field that leaked shows as a value."""
    rows = []
    for delivery in deliveries:
        row = _rows([delivery["record"]], columns)[0]
        row[RECIPIENT] = delivery.get("recipient")
        row[PURPOSES] = delivery.get("purposes")
        row[POLICY_VERSION] = delivery.get("policy_version")
        rows.append(row)
    return pd.DataFrame(rows, columns=[*columns, AGE_COLUMN, RECIPIENT, PURPOSES, POLICY_VERSION])
