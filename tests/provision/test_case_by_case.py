"""A case-by-case request, checked before any network call (the broker test is in
tests/processors/test_channels_e2e.py)."""

from __future__ import annotations

import pytest

from streams.errors import ConfigError
from streams.policy.model import Policy
from streams.provision.case_by_case import Request, checked
from tests.policy.test_handling import INVESTIGATOR, _with_channels
from tests.policy.test_provide import AUTHORITY, LAWYER

POLICY = Policy.model_validate(_with_channels(INVESTIGATOR, LAWYER, AUTHORITY))
GOOD = Request(channel="counsel", basis="professional", reference="BAR-2026-0042", subject_key="jcom-insurance:C1")


def test_a_request_to_a_case_by_case_channel_under_its_basis_is_accepted() -> None:
    assert checked(POLICY, GOOD).id == "counsel"
    assert (
        checked(POLICY, Request("authority", "legal_obligation", "court/2026:7", "jcom-insurance:C1")).id == "authority"
    )


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"reference": ""}, "--request: every case-by-case provision names the request it answers"),
        ({"reference": "two words"}, "--request"),
        ({"reference": "x" * 65}, "--request"),
        ({"channel": "claims-investigator"}, "--channel: claims-investigator is a standing channel"),
        ({"channel": "nosuch"}, "--channel: nosuch is not a channel"),
        ({"basis": "legal_obligation"}, "--basis: counsel is provided under professional"),
        ({"subject_key": "jcom:C1"}, "--subject: must be jcom-insurance:<customer_id>"),
        ({"subject_key": "jcom-insurance:"}, "--subject"),
    ],
)
def test_a_request_that_cannot_be_answered_is_refused_by_its_option(change: dict[str, str], refusal: str) -> None:
    request = Request(**{**GOOD.__dict__, **change})
    with pytest.raises(ConfigError) as refused:
        checked(POLICY, request)
    assert str(refused.value).startswith(refusal)
    assert "C1" not in str(refused.value)  # never the subject
