"""The insurer's own notice in the policy: its purposes, and channels typed by legal basis."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.policy.bases import BASES, NEVER_PROVIDED, SECTION_5, LegalBasis
from streams.policy.classification import FieldClass
from streams.policy.model import Policy
from tests.conftest import POLICY_PATH

SEED_INSURER_PURPOSES = [
    "各種保険契約の引受、継続・維持管理",
    "保険金等の支払",
    "再保険契約の締結、再保険契約に基づく通知および再保険金の請求",
    "提携会社や関連会社を含めた各種商品・サービス等の案内・提供・管理",
    "市場調査ならびにデータ分析やアンケートの実施等による新たな商品・サービスの開発",
    "応募懸賞などの景品等の送付",
    "他の少額短期保険業者または保険会社から委託された保険募集業務の遂行",
    "その他、上記(1)から(7)に付随する業務ならびにお客さまとのお取引および当社の業務運営を適切かつ円滑に履行するために行う業務",
]
# Sections 1 to 8 of the insurer's 個人情報の取扱いについて, verbatim from the source document.
SEED = Path(__file__).parent / "golden" / "insurer_handling_seed_ja.txt"

INVESTIGATOR = {
    "id": "claims-investigator",
    "basis": "entrustment",
    "name_ja": "損害調査株式会社",
    "purposes": ["insurer.claims_payment"],
    "items": ["name", "address", "phone", "birth_date"],
    "insurer_fields": ["policy", "claims"],
    "sensitive_fields": ["medical_history", "claims[].diagnosis"],
    "task_ja": "保険金の請求・支払いに関する損害調査",
    "contract": "ENT-2026-004",
}


def _shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    return data


def _with_channels(*channels: dict[str, Any]) -> dict[str, Any]:
    data = _shipped()
    data["handling"]["channels"] = [copy.deepcopy(c) for c in channels]
    return data


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as refused:
        Policy.model_validate(data)
    return str(refused.value.errors()[0]["msg"])


def test_the_shipped_policy_holds_the_insurers_eight_purposes_verbatim() -> None:
    policy = Policy.model_validate(_shipped())
    assert policy.handling is not None
    assert [p.ja for p in policy.handling.purposes] == SEED_INSURER_PURPOSES
    assert policy.handling.provider == "jcom-insurance"
    assert set(policy.handling.sensitive_purposes) == {
        "insurer.underwriting",
        "insurer.claims_payment",
        "insurer.reinsurance",
    }
    text = SEED.read_text(encoding="utf-8")
    assert all(f"  {n}. {purpose}\n" in text for n, purpose in enumerate(SEED_INSURER_PURPOSES, start=1))


def test_section_5s_bases_are_worded_as_the_notice_words_them() -> None:
    text = SEED.read_text(encoding="utf-8")
    assert all(BASES[basis].ja in text for basis in SECTION_5)


def test_an_entrusted_investigator_with_its_tasks_items_is_accepted() -> None:
    policy = Policy.model_validate(_with_channels(INVESTIGATOR))
    assert policy.handling is not None
    (channel,) = policy.handling.channels
    assert channel.basis is LegalBasis.ENTRUSTMENT and channel.sensitive_fields == (
        "medical_history",
        "claims[].diagnosis",
    )


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"task_ja": ""}, "names its task"),
        ({"contract": ""}, "names its task (task_ja) and contract"),
        ({"purposes": ["insurer.products"]}, "purposes the guideline does not allow"),
        ({"purposes": ["insurer.claims_payment", "insurer.products"]}, "purposes the guideline does not allow"),
        ({"purposes": ["jointuse.billing"]}, "unknown purposes"),
        ({"items": ["name", "name"]}, "lists a value twice"),
        ({"items": ["shoe_size"]}, "unknown items"),
        ({"id": "jcom"}, "id of a joint user"),
        ({"name_ja": "JCOM株式会社"}, "a joint user never receives sensitive data"),
        ({"basis": "joint_use"}, "listed under joint_users"),
        ({"basis": "foreign"}, "names its country"),  # abroad without a country
        ({"country": "US"}, "names its country"),  # a country at home
        ({"basis": "foreign", "country": "US", "sensitive_fields": []}, "name where it is given"),
        ({"basis": "foreign", "country": "US", "consent_reference": "申込書"}, "never carries sensitive data"),
        (
            {
                "basis": "foreign",
                "country": "US",
                "consent_reference": "申込書",
                "sensitive_fields": [],
                "contract": "",
            },
            "names its treaty",
        ),
        (
            {"basis": "foreign", "country": "JP", "consent_reference": "申込書", "sensitive_fields": []},
            "a country the notice does not publish",
        ),
        ({"basis": "industry_exchange", "consent_reference": "申込書"}, "never carries sensitive data"),
        ({"basis": "reinsurance", "contract": "", "task_ja": ""}, "names its treaty"),
        ({"basis": "reinsurance"}, "name where it is given"),
        ({"basis": "nosuch"}, "Input should be"),
    ],
)
def test_a_channel_beyond_its_basis_is_refused(change: dict[str, Any], refusal: str) -> None:
    assert refusal in _refusal(_with_channels({**INVESTIGATOR, **change}))


def test_sensitive_purposes_are_the_insurers_own() -> None:
    data = _shipped()
    data["handling"]["sensitive_purposes"] = ["jointuse.billing"]
    assert "unknown purposes" in _refusal(data)


def test_the_insurers_purposes_are_not_joint_use_purposes() -> None:
    data = _shipped()
    data["handling"]["purposes"][3]["id"] = "jointuse.billing"  # not a sensitive purpose
    assert "also joint-use purposes" in _refusal(data)


def test_a_missing_insurer_purpose_is_named() -> None:
    data = _shipped()
    del data["handling"]["purposes"][2]
    assert "handling purpose 3 is missing" in _refusal(data)


def test_the_provider_is_a_joint_user() -> None:
    data = _shipped()
    data["handling"]["provider"] = "nosuchco"
    assert "is not a joint user" in _refusal(data)


def test_two_channels_with_one_id_are_refused() -> None:
    assert "duplicate channel id" in _refusal(_with_channels(INVESTIGATOR, INVESTIGATOR))


def test_every_basis_states_what_the_law_asks() -> None:
    for basis, rules in BASES.items():
        assert rules.id is basis
        assert not (rules.classes & NEVER_PROVIDED), basis  # secrecy of communications never anywhere
        # Art. 27(5): entrustment and joint use are not provision to a third party, and need no record
        assert rules.third_party is (basis not in (LegalBasis.JOINT_USE, LegalBasis.ENTRUSTMENT))
        if not rules.third_party:
            assert not rules.consent_required and not rules.provision_record
    assert not BASES[LegalBasis.JOINT_USE].may_carry_sensitive
    assert BASES[LegalBasis.FOREIGN].provision_record and BASES[LegalBasis.FOREIGN].consent_required
    assert not BASES[LegalBasis.LEGAL_OBLIGATION].provision_record  # Art. 29(1) proviso
    case_by_case = {b for b, r in BASES.items() if not r.continuous}
    assert case_by_case == {LegalBasis.PROFESSIONAL, LegalBasis.LEGAL_OBLIGATION}
    assert all(BASES[b].request_reference for b in case_by_case)


_BASES_OF_CHANNELS = [b.value for b in SECTION_5]
_PURPOSES = ["insurer.underwriting", "insurer.claims_payment", "insurer.reinsurance", "insurer.products"]
_ITEMS = ["name", "address", "phone", "birth_date", "email", "gender"]


@st.composite
def _channels(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(st.sampled_from(["recipient-a", "recipient-b"])),
        "basis": draw(st.sampled_from(_BASES_OF_CHANNELS)),
        "name_ja": draw(st.sampled_from(["受領者株式会社", "JCOM株式会社"])),
        "purposes": draw(st.lists(st.sampled_from(_PURPOSES), min_size=1, max_size=2, unique=True)),
        "items": draw(st.lists(st.sampled_from(_ITEMS), max_size=3, unique=True)),
        "insurer_fields": draw(st.lists(st.sampled_from(["policy", "claims"]), max_size=2, unique=True)),
        "sensitive_fields": draw(st.lists(st.sampled_from(["medical_history", "race"]), max_size=1)),
        "task_ja": draw(st.sampled_from(["", "損害調査"])),
        "contract": draw(st.sampled_from(["", "C-1"])),
        "consent_reference": draw(st.sampled_from(["", "申込書 第5条"])),
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(_channels(), max_size=3))
def test_an_accepted_policy_never_lets_a_channel_beyond_its_basis(channels: list[dict[str, Any]]) -> None:
    try:
        policy = Policy.model_validate(_with_channels(*channels))
    except ValidationError:
        return
    assert policy.handling is not None
    group_names = {u.name_ja for u in policy.joint_users}
    for channel in policy.handling.channels:
        rules = BASES[channel.basis]
        assert channel.basis in SECTION_5
        if channel.sensitive_fields:
            assert rules.may_carry_sensitive
            assert set(channel.purposes) <= set(policy.handling.sensitive_purposes)
            assert channel.name_ja not in group_names
        if channel.insurer_fields:
            assert FieldClass.INSURER_ONLY in rules.classes
        if rules.consent_required:
            assert channel.consent_reference


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"insurer_fields": ["email"]}, "insurer_fields names 'email', not an insurer-only field"),
        ({"sensitive_fields": ["call_records"]}, "sensitive_fields names 'call_records', not a sensitive field"),
        ({"sensitive_fields": ["claims[].nosuch"]}, "not a sensitive field"),
    ],
)
def test_policy_check_refuses_channel_fields_the_schema_does_not_class_so(change: dict[str, Any], problem: str) -> None:
    from streams.policy.loader import PolicySet
    from streams.serde.preflight import runtime_problems

    ok = PolicySet.of([Policy.model_validate(_with_channels(INVESTIGATOR))])
    assert runtime_problems(POLICY_PATH.parent.parent / "schemas", ok) == []
    bad = PolicySet.of([Policy.model_validate(_with_channels({**INVESTIGATOR, **change}))])
    problems = runtime_problems(POLICY_PATH.parent.parent / "schemas", bad)
    assert problems and all(problem in p for p in problems[:1]), problems


def _seed_sections() -> dict[str, str]:
    """The seed's numbered sections of 個人情報の取扱いについて, by number, as published."""
    import re

    text = SEED.read_text(encoding="utf-8")
    starts = [(m.group(1), m.start()) for m in re.finditer(r"^(\d) \S", text, re.M)]
    return {
        number: text[start : (starts[i + 1][1] if i + 1 < len(starts) else len(text))].rstrip("\n")
        for i, (number, start) in enumerate(starts)
    }


def test_the_rendered_notice_is_the_seeds_sections_1_5_6_and_8() -> None:
    from streams.policy.notice import render_handling

    rendered = render_handling(Policy.model_validate(_shipped()))
    seed = _seed_sections()
    by_section: dict[str, list[str]] = {}
    current = ""
    for line in rendered.splitlines():
        if line[:1].isdigit() and line[1:2] == " ":
            current = line[0]
        by_section.setdefault(current, []).append(line)
    assert sorted(by_section) == ["1", "5", "6", "8"]
    for number, lines in by_section.items():
        assert "\n".join(lines).rstrip("\n") == seed[number], number


def test_a_channel_under_a_basis_the_notice_does_not_publish_is_refused() -> None:
    data = _with_channels(INVESTIGATOR)
    data["handling"]["bases"] = ["legal_obligation", "reinsurance"]
    assert "is not published (handling.bases)" in _refusal(data)
    data["handling"]["bases"] = ["entrustment", "foreign"]
    assert "has a section of its own" in _refusal(data)


def test_policy_diff_classes_a_channel_change_by_its_basis() -> None:
    from streams.policy.diff import Requirement, diff_policies
    from tests.policy.test_provide import AUTHORITY, REINSURER

    def version(label: str, *channels: dict[str, Any], bases: list[str] | None = None) -> Policy:
        data = _with_channels(*channels)
        data["notice"]["version"] = label
        if bases is not None:
            data["handling"]["bases"] = bases
        return Policy.model_validate(data)

    def classes(old: Policy, new: Policy) -> dict[str, Requirement]:
        return {c.path: c.requirement for c in diff_policies(old, new).changes if c.path != "notice.version"}

    none = version("a")
    # An entrustee and a law's channel: the insurer's to decide within the published basis.
    assert set(classes(none, version("b", INVESTIGATOR, AUTHORITY)).values()) == {Requirement.INTERNAL}
    wider = {**INVESTIGATOR, "items": [*INVESTIGATOR["items"], "email"]}
    assert classes(version("b", INVESTIGATOR), version("c", wider)) == {
        "handling.channels[claims-investigator].items": Requirement.INTERNAL
    }
    # A third party under consent: a new recipient or wider items need consent.
    assert classes(none, version("b", REINSURER)) == {"handling.channels[domestic-re]": Requirement.CONSENT}
    wider_re = {**REINSURER, "items": [*REINSURER["items"], "address"]}
    assert set(classes(version("b", REINSURER), version("c", wider_re)).values()) == {Requirement.CONSENT}
    # A basis the notice did not publish: consent.
    fewer = version("b", bases=["legal_obligation", "entrustment"])
    assert classes(fewer, none) == {"handling.bases": Requirement.CONSENT}


def test_the_example_channels_are_one_per_basis_abroad_included_and_pass_policy_check() -> None:
    from streams.devtools.demo import EXAMPLE_CHANNELS
    from streams.policy.loader import PolicySet
    from streams.serde.preflight import runtime_problems

    channels = yaml.safe_load(EXAMPLE_CHANNELS.read_text(encoding="utf-8"))
    policy = Policy.model_validate(_with_channels(*channels))
    assert policy.handling is not None
    assert sorted(c.basis for c in policy.handling.channels) == sorted([*SECTION_5, LegalBasis.FOREIGN])
    assert runtime_problems(POLICY_PATH.parent.parent / "schemas", PolicySet.of([policy])) == []


def test_a_recipient_abroad_is_a_channel_not_a_list_of_its_own() -> None:
    """Section 6's recipients are channels under the foreign basis; the old list is refused, saying where
    they go now."""
    data = _shipped()
    data["foreign_provision"]["recipients"] = [{"id": "re-us", "name": "Re", "country": "US"}]
    assert "a recipient abroad is a channel of handling with basis foreign" in _refusal(data)
    data = _shipped()
    data["foreign_provision"]["provider"] = "jcom-insurance"
    assert "handling.provider is its provider" in _refusal(data)
