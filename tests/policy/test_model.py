from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import PolicyError
from streams.policy.loader import PolicySet, load_policies, parse_policy
from tests.conftest import POLICY_PATH

SEED_PURPOSES = [
    "会員制サービスへの登録の確認やサービスを提供するため",
    "契約者がダウンロードされたコンテンツやアプリケーションの情報を管理するため",
    "商品・サービスの請求、お支払いとその確認を行うため",
    "懸賞などの景品等をお届けするため",
    "アンケート調査の謝礼をお届けするため",
    "定期刊行物、書籍、デジタル・コンテンツ、電子メール、各種会員制サービスその他各種サービスの制作・発表・ご案内を行うため",
    "調査のご協力や各種イベントへの参加ご案内並びにその結果を報告するため",
    "サービス、ウェブサイト等の利用状況を把握し、当社をはじめお客さまに有益と思われる企業・団体の情報をお届けするため",
    "お問い合わせ内容の確認とサービス向上のため",
    "一般に公開されている情報や当社の業務を遂行するにあたり知り得た関連情報、外部事業者より提供を受けた情報をJ:COMサービスの販売促進活動に利用するため",
    "調査・分析及びマーケティングを行うため",
    "視聴情報や設置機器の使用状況並びに操作に関する記録から、お勧め情報を表示するため",
    "その他、ジェイコムグループ各社が提供するサービスに関する契約約款及び規約等の規定に基づき利用するため",
]
SEED_ITEMS = [
    "氏名",
    "住所",
    "電話番号",
    "性別",
    "生年月日",
    "メールアドレス",
    "各種ジェイコムサービスの利用履歴",
    "お問い合わせ履歴",
    "視聴履歴",
    "お支払い状況",
]


def test_default_policy_encodes_the_seed(policies: PolicySet) -> None:
    policy = policies.latest
    assert [p.ja for p in policy.purposes] == SEED_PURPOSES
    assert [p.ordinal for p in policy.purposes] == list(range(1, 14))
    assert [i.ja for i in policy.items][: len(SEED_ITEMS)] == SEED_ITEMS
    assert policy.items[-1].id == "contract_information"  # the catch-all
    assert [u.id for u in policy.joint_users] == ["jcom", "jcom-insurance"]
    party = policy.notice.responsible_party
    assert (party.name_ja, party.representative_ja) == ("JCOM株式会社", "岩木 陽一")
    assert "丸の内トラストタワーN館" in party.address_ja
    assert [m.ja for m in policy.notice.acquisition_methods] == ["申込書", "インターネット", "ハガキ"]
    assert policy.foreign_provision.allowed_countries == ("US", "GB", "CH", "LU", "SG")
    assert policy.notice.exclusion_ja == "通信の秘密に抵触する情報は除く"


def test_adding_a_joint_user_is_one_line() -> None:
    text = POLICY_PATH.read_text(encoding="utf-8")
    added = text.replace(
        "joint_users:\n", "joint_users:\n  - {id: jcom-west, name_ja: ジェイコムウエスト株式会社}\n", 1
    )
    assert len(added.splitlines()) == len(text.splitlines()) + 1
    policy = parse_policy(added)
    assert "jcom-west" in policy.users_by_id
    assert policy.declared_purposes("jcom-west") == frozenset(policy.purpose_ids)


@pytest.mark.parametrize(
    ("change", "line", "fragment"),
    [
        (("id: jcom-insurance,", "id: JCOM Insurance,"), 66, "joint_users.1.id"),
        (("retention: P5Y}", "retention: five years}"), 27, "items.0.retention"),
        (("ordinal: 2,", "ordinal: 3,"), None, "ordinals"),
        (("marketing: false, ja: 会員制", "marketing: maybe, ja: 会員制"), 45, "purposes.0.marketing"),
        (("joint_users:\n", "joint_users:\n  - {id: jcom, name_ja: 重複}\n"), None, "duplicate joint user"),
        (("effective_from: 2026-01-01T00:00:00+09:00", "effective_from: 2026-01-01T00:00:00"), 9, "UTC offset"),
        (("  - {id: jcom, name_ja", "  - {id: jcom, purposes: [jointuse.nothing], name_ja"), None, "unknown purposes"),
        (("items:\n", "items: [\n"), None, "invalid YAML"),
        (('  version: "2026-01"\n', '  version: "2026-01"\n  version: "2026-02"\n'), 8, "'version' is given twice"),
        (("{id: phone, ja: 電話番号,", "{id: phone, ja: 電話番号, ja: 電話,"), 29, "'ja' is given twice"),
        (("published_at: 2026-01-01", "published_at: 2026-01-02"), 6, "effective_from is before published_at"),
        (("ordinal: 4,", "ordinal: 5,"), None, "purpose 4 is missing"),
        (("ordinal: 2,", "ordinal: 1,"), None, "purpose 2 is missing"),
        (("ordinal: 13,", "ordinal: 12,"), None, "purpose 12 is listed twice"),
    ],
)
def test_invalid_policy_names_file_line_and_problem(change: tuple[str, str], line: int | None, fragment: str) -> None:
    text = POLICY_PATH.read_text(encoding="utf-8")
    assert change[0] in text
    with pytest.raises(PolicyError) as caught:
        parse_policy(text.replace(change[0], change[1], 1), source="proposed.yaml")
    message = str(caught.value)
    assert message.startswith("proposed.yaml:")
    assert fragment in message
    if line is not None:
        assert caught.value.line == line


def test_version_in_force_follows_effective_from(tmp_path: Path) -> None:
    text = POLICY_PATH.read_text(encoding="utf-8")
    (tmp_path / "v1.yaml").write_text(text, encoding="utf-8")
    later = text.replace('version: "2026-01"', 'version: "2026-07"').replace(
        "effective_from: 2026-01-01T00:00:00+09:00", "effective_from: 2026-07-01T00:00:00+09:00"
    )
    (tmp_path / "v2.yaml").write_text(later, encoding="utf-8")
    policies = load_policies(tmp_path)
    import datetime as dt

    jst = dt.timezone(dt.timedelta(hours=9))
    assert policies.in_force(dt.datetime(2025, 12, 31, 23, 59, tzinfo=jst)) is None
    assert policies.in_force(dt.datetime(2026, 6, 30, 23, 59, tzinfo=jst)).version == "2026-01"  # type: ignore[union-attr]
    assert policies.in_force(dt.datetime(2026, 7, 1, 0, 0, tzinfo=jst)).version == "2026-07"  # type: ignore[union-attr]
    assert policies.latest.version == "2026-07"


def test_empty_and_missing_policy_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="empty"):
        parse_policy("", source="empty.yaml")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policies(tmp_path / "absent.yaml")
    with pytest.raises(PolicyError, match=r"no \*\.yaml"):
        load_policies(tmp_path)


@pytest.mark.parametrize(
    ("effective_from", "published_at", "fragment"),
    [
        ("2026-01-01T00:00:00+09:00", None, "take effect at the same time"),
        ("2026-07-01T00:00:00+09:00", "2025-11-30", "versions out of order"),
    ],
)
def test_a_directory_of_versions_out_of_order_is_refused(
    tmp_path: Path, effective_from: str, published_at: str | None, fragment: str
) -> None:
    text = POLICY_PATH.read_text(encoding="utf-8")
    published = next(line for line in text.splitlines() if line.lstrip().startswith("published_at:"))
    (tmp_path / "v1.yaml").write_text(text, encoding="utf-8")
    later = text.replace('version: "2026-01"', 'version: "2026-07"').replace(
        "effective_from: 2026-01-01T00:00:00+09:00", f"effective_from: {effective_from}"
    )
    if published_at is not None:
        later = later.replace(published, published.split(":")[0] + f": {published_at}")
    (tmp_path / "v2.yaml").write_text(later, encoding="utf-8")
    with pytest.raises(PolicyError, match=fragment) as refused:
        load_policies(tmp_path)
    assert "2026-07" in str(refused.value)
