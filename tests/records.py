"""Test data: synthetic records in native form (as the engine and the Avro codec see them)."""

from __future__ import annotations

from typing import Any

from streams.devtools.synthetic import Generator, Mix
from streams.policy.classification import load_schema
from streams.serde.json_form import JsonForm
from streams.settings import PROJECT_ROOT

_FORM = JsonForm(load_schema(PROJECT_ROOT / "schemas" / "customer_record.v1.avsc"))
CLEAN = Mix(invalid=0.0)


def make_json_records(count: int, *, seed: int = 0, mix: Mix = CLEAN) -> list[dict[str, Any]]:
    out = []
    for _, record in Generator(seed=seed, mix=mix).records(count):
        assert isinstance(record, dict)
        out.append(record)
    return out


def make_native_records(count: int, *, seed: int = 0, mix: Mix = CLEAN) -> list[dict[str, Any]]:
    return [_FORM.to_native(r) for r in make_json_records(count, seed=seed, mix=mix)]
