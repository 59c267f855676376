"""The suites in the repository, and Great Expectations on clean and dirty batches (no broker)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from streams.policy.classification import ClassifiedSchema
from streams.policy.loader import PolicySet
from streams.quality.frames import delivery_frame, ingest_frame
from streams.quality.suites_store import generated, load_suites, render
from streams.quality.validate import validate
from streams.serde.governed import governed_version
from streams.settings import PROJECT_ROOT
from tests.records import make_json_records

SUITES = PROJECT_ROOT / "dq" / "suites"


@pytest.fixture(scope="module")
def schema() -> ClassifiedSchema:
    """The latest governed version: the suites are generated from it and the sampler renders with it."""
    return governed_version(PROJECT_ROOT / "schemas").classified


def test_repository_suites_are_the_ones_the_latest_schema_and_policy_give(
    schema: ClassifiedSchema, policies: PolicySet
) -> None:
    for kind, suite in generated(schema, policies).items():
        assert (SUITES / f"{kind}.json").read_text(encoding="utf-8") == render(suite), (
            f"dq/suites/{kind}.json is stale: run `jointuse dq suites --write`"
        )


@pytest.fixture(scope="module")
def clean() -> list[dict[str, Any]]:
    return make_json_records(200, seed=3)


def _columns(schema: ClassifiedSchema) -> list[str]:
    return [f.name for f in schema.fields]


def test_clean_ingest_batch_passes(schema: ClassifiedSchema, clean: list[dict[str, Any]]) -> None:
    result = validate(ingest_frame(clean, _columns(schema)), load_suites(SUITES)["ingest"])
    assert result.success, result.failures
    assert result.rows == 200 and result.evaluated >= 9


def test_dirty_ingest_batch_fails_naming_expectations_never_values(
    schema: ClassifiedSchema, clean: list[dict[str, Any]]
) -> None:
    dirty = copy.deepcopy(clean)
    dirty[0]["email"] = "SECRET-not-an-email"
    dirty[1]["postal_code"] = "1234567"
    dirty[2]["birth_date"] = "1850-01-01"
    dirty[3]["customer_id"] = dirty[4]["customer_id"]
    result = validate(ingest_frame(dirty, _columns(schema)), load_suites(SUITES)["ingest"])
    assert not result.success
    failed = {(f.expectation, f.column): f.unexpected_count for f in result.failures}
    assert failed == {
        ("expect_column_values_to_match_regex", "email"): 1,
        ("expect_column_values_to_match_regex", "postal_code"): 1,
        ("expect_column_values_to_be_between", "age_years"): 1,
        ("expect_column_values_to_be_unique", "customer_id"): 2,
    }
    assert "SECRET" not in repr(result.to_dict())


def test_delivery_batch_with_a_protected_column_or_unknown_purpose_fails(
    schema: ClassifiedSchema, clean: list[dict[str, Any]]
) -> None:
    def delivery(record: dict[str, Any], purposes: str = "jointuse.billing") -> dict[str, Any]:
        shareable = {k: v for k, v in record.items() if k in {"customer_id", "source_company", "name", "email"}}
        return {"recipient": "jcom-insurance", "purposes": purposes, "policy_version": "2026-01", "record": shareable}

    rows = [delivery(r) for r in clean[:50]]
    suite = load_suites(SUITES)["delivery"]
    assert validate(delivery_frame(rows, _columns(schema)), suite).success
    rows[0]["record"]["message_contents"] = ["SECRET-leak"]
    rows[1]["purposes"] = "jointuse.billing,jointuse.selling_your_data"
    failed = {f.column for f in validate(delivery_frame(rows, _columns(schema)), suite).failures}
    assert failed == {"message_contents", "purposes"}
