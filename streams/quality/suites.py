"""The expectation suites, derived from the schema and the policy (pure: plain dicts in GX's suite
format, no Great Expectations import). ``jointuse dq suites --write`` keeps them in ``dq/suites``."""

from __future__ import annotations

import re
from typing import Any

from streams.policy.classification import ClassifiedSchema, FieldClass
from streams.policy.loader import PolicySet

# Formats of the records the group companies publish (Japanese conventions).
EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
POSTAL_CODE = r"^[0-9]{3}-[0-9]{4}$"
PHONE = r"^0[0-9]{1,4}-[0-9]{1,4}-[0-9]{3,4}$"
AGE_COLUMN = "age_years"  # computed from birth_date when the frame is built
RECIPIENT, PURPOSES, POLICY_VERSION = "recipient", "purposes", "policy_version"
NEVER_DELIVERED = (
    FieldClass.SECRECY_OF_COMMUNICATIONS,
    FieldClass.SENSITIVE,
    FieldClass.INSURER_ONLY,
    FieldClass.CONSENT,
)


def _expect(kind: str, why: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"why": why}}


def _formats() -> list[dict[str, Any]]:
    return [
        _expect("expect_column_values_to_match_regex", "email format", column="email", regex=EMAIL),
        _expect("expect_column_values_to_match_regex", "postal code NNN-NNNN", column="postal_code", regex=POSTAL_CODE),
        _expect("expect_column_values_to_match_regex", "Japanese phone number format", column="phone", regex=PHONE),
        _expect(
            "expect_column_values_to_be_between",
            "birth_date in a sane range: 0 to 120 years before the record",
            column=AGE_COLUMN,
            min_value=0,
            max_value=120,
        ),
    ]


def ingest_suite(schema: ClassifiedSchema, policies: PolicySet) -> dict[str, Any]:
    required = [f.name for f in schema.fields if f.required]
    companies = sorted({u.id for p in policies.versions for u in p.joint_users})
    expectations = [
        _expect("expect_column_values_to_not_be_null", "required by the schema", column=name) for name in required
    ]
    expectations += _formats()
    expectations += [
        _expect("expect_column_values_to_be_unique", "one record per customer per batch", column="customer_id"),
        _expect(
            "expect_column_values_to_be_in_set",
            "published by a joint user",
            column="source_company",
            value_set=companies,
        ),
    ]
    return {"name": "jointuse_ingest", "expectations": expectations, "meta": {"generated_by": "jointuse dq suites"}}


def delivery_suite(schema: ClassifiedSchema, policies: PolicySet) -> dict[str, Any]:
    protected = [f.name for f in schema.fields if f.cls in NEVER_DELIVERED]
    purposes = sorted({p for policy in policies.versions for p in policy.purpose_ids})
    one = "(" + "|".join(re.escape(p) for p in purposes) + ")"
    companies = sorted({u.id for p in policies.versions for u in p.joint_users})
    expectations = [
        _expect("expect_column_values_to_not_be_null", "every delivery names its subject", column=name)
        for name in ("customer_id", "source_company", RECIPIENT, PURPOSES, POLICY_VERSION)
    ]
    expectations += [
        _expect("expect_column_values_to_be_null", f"never delivered: {f.cls.value}", column=f.name)
        for f in schema.fields
        if f.name in protected
    ]
    expectations += _formats()
    expectations += [
        _expect(
            "expect_compound_columns_to_be_unique",
            "one delivery per customer and recipient per batch",
            column_list=[RECIPIENT, "source_company", "customer_id"],
        ),
        _expect(
            "expect_column_values_to_match_regex",
            "every purpose belongs to the notice",
            column=PURPOSES,
            regex=f"^{one}(,{one})*$",
        ),
        _expect(
            "expect_column_values_to_be_in_set", "recipients are joint users", column=RECIPIENT, value_set=companies
        ),
        _expect(
            "expect_column_values_to_be_in_set",
            "a published notice version",
            column=POLICY_VERSION,
            value_set=sorted(p.version for p in policies.versions),
        ),
    ]
    return {"name": "jointuse_delivery", "expectations": expectations, "meta": {"generated_by": "jointuse dq suites"}}
