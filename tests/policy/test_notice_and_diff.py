from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import PolicyError
from streams.policy.diff import Requirement, diff_policies
from streams.policy.loader import PolicySet, parse_policy
from streams.policy.notice import render_notice
from tests.conftest import POLICY_PATH
from tests.policy.test_model import SEED_PURPOSES

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_notice_matches_golden(policies: PolicySet, lang: str) -> None:
    expected = (GOLDEN / f"notice.{lang}.txt").read_text(encoding="utf-8")
    assert render_notice(policies.latest, "ja" if lang == "ja" else "en") == expected


def test_japanese_notice_holds_every_seed_purpose_verbatim(policies: PolicySet) -> None:
    text = render_notice(policies.latest, "ja")
    for purpose in SEED_PURPOSES:
        assert f"  • {purpose}\n" in text
    assert "岩木 陽一" in text and "東京都千代田区丸の内1-8-1" in text
    assert "通信の秘密に抵触する情報は除く" in text


def _variant(**replacements: str) -> str:
    text = POLICY_PATH.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new, 1)
    return text


def test_diff_of_identical_versions_is_empty() -> None:
    policy = parse_policy(POLICY_PATH.read_text(encoding="utf-8"))
    result = diff_policies(policy, policy)
    assert result.changes == ()
    assert result.problems  # same effective date: the new version does not follow the old


def test_diff_flags_what_needs_publication_and_what_needs_consent() -> None:
    old = parse_policy(POLICY_PATH.read_text(encoding="utf-8"))
    new = parse_policy(
        _variant(
            **{
                'version: "2026-01"': 'version: "2026-07"',
                "published_at: 2026-01-01": "published_at: 2026-06-01",
                "effective_from: 2026-01-01T00:00:00+09:00": "effective_from: 2026-07-01T00:00:00+09:00",
                "ja: アンケート調査の謝礼をお届けするため": "ja: アンケート調査の謝礼及び記念品をお届けするため",
                "  - {id: jcom, name_ja": (
                    "  - {id: jcom-west, name_ja: ジェイコムウエスト株式会社}\n  - {id: jcom, name_ja"
                ),
                "representative_ja: 岩木 陽一": "representative_ja: 山田 花子",
            }
        )
    )
    result = diff_policies(old, new)
    found = {(c.path, c.kind): c.requirement for c in result.changes}
    assert found[("purposes[jointuse.survey_rewards].ja", "changed")] is Requirement.ADVANCE_NOTICE
    assert found[("joint_users[jcom-west]", "added")] is Requirement.CONSENT
    assert found[("notice.responsible_party.representative_ja", "changed")] is Requirement.NOTIFY_WITHOUT_DELAY
    assert not any(path.startswith("joint_users[jcom-west].") for path, _ in found)  # the element, once
    assert result.needs_consent
    assert result.problems == ()


def test_diff_problem_when_change_takes_effect_before_publication() -> None:
    old = parse_policy(POLICY_PATH.read_text(encoding="utf-8"))
    new = parse_policy(
        _variant(
            **{
                'version: "2026-01"': 'version: "2026-02"',
                # the same day: the loader refuses a version effective before its publication,
                # and a change needing advance notice must not take effect on the day it is published
                "published_at: 2026-01-01": "published_at: 2026-02-01",
                "effective_from: 2026-01-01T00:00:00+09:00": "effective_from: 2026-02-01T00:00:00+09:00",
                "ja: 懸賞などの景品等をお届けするため": "ja: 懸賞の景品をお届けするため",
            }
        )
    )
    result = diff_policies(old, new)
    assert any("publication" in p for p in result.problems)


def test_every_field_of_the_notice_model_has_a_diff_rule() -> None:
    from streams.policy.diff import RULES, model_patterns
    from streams.policy.model import Policy

    missing = [p for p in model_patterns(Policy) if p not in RULES]
    assert missing == [], "a new notice field needs a rule in streams/policy/diff.py RULES"


ABROAD = (
    "channels: [{id: re-us, basis: foreign, name_ja: 米国再保険会社, country: US, purposes: [insurer.reinsurance], "
    "items: [name], contract: T-1, consent_reference: 申込書}]"
)


@pytest.mark.parametrize(
    ("old_text", "new_text", "path", "requirement"),
    [
        (
            "channels: []",
            ABROAD,
            "handling.channels[re-us]",
            Requirement.CONSENT,
        ),
        (
            "allowed_countries: [US, GB, CH, LU, SG]",
            "allowed_countries: [US, GB, CH, LU, SG, KY]",
            "foreign_provision.allowed_countries",
            Requirement.CONSENT,
        ),
        (
            "exclusion_ja: 通信の秘密に抵触する情報は除く",
            'exclusion_ja: ""',
            "notice.exclusion_ja",
            Requirement.CONSENT,
        ),
        (
            "address_ja: 東京都千代田区丸の内1-8-1 丸の内トラストタワーN館",
            "address_ja: 東京都港区",
            "notice.responsible_party.address_ja",
            Requirement.NOTIFY_WITHOUT_DELAY,
        ),
        (
            '{id: name, ja: 氏名, en: "Name", retention: P5Y}',
            '{id: name, ja: 氏名, en: "Name", retention: P3Y}',
            "items[name].retention",
            Requirement.INTERNAL,
        ),
    ],
)
def test_diff_sees_changes_a_hand_list_missed(
    old_text: str, new_text: str, path: str, requirement: Requirement
) -> None:
    old = parse_policy(POLICY_PATH.read_text(encoding="utf-8"))
    new = parse_policy(_variant(**{old_text: new_text}))
    found = {c.path: c.requirement for c in diff_policies(old, new).changes}
    assert found == {path: requirement}


def test_diff_of_a_recipient_abroad_its_items_country_and_treaty() -> None:
    base = ABROAD
    old = parse_policy(_variant(**{"channels: []": base}))
    wider = base.replace("items: [name]", "items: [name, email], insurer_fields: [policy]")
    new = parse_policy(_variant(**{"channels: []": wider.replace("country: US", "country: GB").replace("T-1", "T-2")}))
    found = {c.path: c.requirement for c in diff_policies(old, new).changes}
    assert found == {  # consent to provision abroad is to these items, in that country (Art. 28)
        "handling.channels[re-us].items": Requirement.CONSENT,
        "handling.channels[re-us].insurer_fields": Requirement.CONSENT,
        "handling.channels[re-us].country": Requirement.CONSENT,
        "handling.channels[re-us].contract": Requirement.INTERNAL,
    }


def test_withdrawing_statistical_processing_needs_advance_notice_and_takes_the_tables_with_it() -> None:
    text = POLICY_PATH.read_text(encoding="utf-8")
    withdrawn = text.replace("statistical_processing: true", "statistical_processing: false")
    with pytest.raises(PolicyError, match="does not publish statistical processing"):
        parse_policy(withdrawn)
    new = parse_policy(withdrawn[: withdrawn.index("\nstatistics:")])
    found = {c.path: c.requirement for c in diff_policies(parse_policy(text), new).changes}
    assert found.pop("notice.statistical_processing") == Requirement.ADVANCE_NOTICE
    assert found and set(found.values()) == {Requirement.INTERNAL}  # the tables themselves
