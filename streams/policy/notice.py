"""Rendering the public joint-use notice from the same policy the pipeline enforces."""

from __future__ import annotations

from typing import Literal

from streams.policy.bases import BASES, LegalBasis
from streams.policy.model import Policy

Lang = Literal["ja", "en"]


def render_notice(policy: Policy, lang: Lang = "ja") -> str:
    return _render_ja(policy) if lang == "ja" else _render_en(policy)


def _render_ja(policy: Policy) -> str:
    n = policy.notice
    party = n.responsible_party
    items = "、".join(i.ja for i in policy.items)
    exclusion = f"(ただし、{n.exclusion_ja})" if n.exclusion_ja else ""
    lines = [
        "個人情報の共同利用について",
        f"(公表事項 {n.id} 版 {n.version}、公表日 {n.published_at.isoformat()}、"
        f"適用開始 {n.effective_from.isoformat()})",
        "",
        "(1) 共同して利用する個人情報の項目",
        f"{items}{exclusion}",
        "",
        "(2) 共同して利用する者の範囲",
        *[f"  • {u.name_ja}" for u in policy.joint_users],
        "",
        "(3) 共同して利用する者の利用目的",
        *[f"  • {p.ja}" for p in policy.purposes],
    ]
    if n.statistical_processing:
        lines.append("※上記目的のための利用情報は、統計加工する場合がございます。")
    lines += [
        "",
        "(4) 取得方法",
        f"共同利用する個人情報は、{'、'.join(m.ja for m in n.acquisition_methods)}などを通じて取得したものです。",
        "",
        "(5) 共同して利用する個人情報の管理について責任を有する者及び住所、代表者の氏名",
        f"責任を有する者: {party.name_ja} {party.role_ja}".rstrip(),
        f"住所: {party.address_ja}",
        f"代表者の氏名: {party.representative_ja}",
    ]
    return "\n".join(lines) + "\n"


def _render_en(policy: Policy) -> str:
    n = policy.notice
    party = n.responsible_party
    exclusion = f" ({n.exclusion_en})" if n.exclusion_en else ""
    lines = [
        "Joint use of personal information",
        f"(notice {n.id}, version {n.version}, published {n.published_at.isoformat()}, "
        f"effective from {n.effective_from.isoformat()})",
        "",
        "(1) Items of personal information used jointly",
        *[f"  - {i.en}" for i in policy.items],
        exclusion.strip(),
        "",
        "(2) Scope of joint users",
        *[f"  - {u.name_en or u.name_ja} ({u.name_ja})" for u in policy.joint_users],
        "",
        "(3) Purposes of use of the joint users",
        *[f"  {p.ordinal}. {p.en}" for p in policy.purposes],
    ]
    if n.statistical_processing:
        lines.append("Information used for these purposes may be statistically processed.")
    lines += [
        "",
        "(4) Acquisition",
        f"Obtained through: {', '.join(m.en for m in n.acquisition_methods)}.",
        "",
        "(5) Party responsible for the management of the jointly used personal information",
        f"Responsible party: {party.name_en} ({party.name_ja} {party.role_ja})",
        f"Address: {party.address_ja}",
        f"Representative: {party.representative_ja}",
    ]
    return "\n".join(lines) + "\n"


# Section 6's countries as the notice names them; a code not here is printed as its code.
COUNTRY_JA = {
    "US": "米国",
    "GB": "英国",
    "CH": "スイス",
    "LU": "ルクセンブルク",
    "SG": "シンガポール",
    "DE": "ドイツ",
    "FR": "フランス",
    "IE": "アイルランド",
    "BM": "バミューダ",
    "JP": "日本",
}
_SECTION_1_LEAD = "個人情報は、以下の利用目的の達成に必要な範囲にのみ利用し、これらの目的のほかには利用しません。"
_SECTION_1_TAIL = (
    "これらの利用目的は、当社事務所に掲載するほか、ご本人から直接書面等で情報を収集する場合に明示いたします。"
)
_SECTION_5_LEAD = "当社では、次の場合を除いて個人情報を外部に提供することはありません。"
_SECTION_6 = (
    "当社は、ご本人の同意に基づき、再保険の引受保険会社等(外国にあるものを含みます。)に個人データの提供"
    "(引受保険会社等から他の引受保険会社等への提供を含みます。)を行うことがあります。",
    "保険契約の申込み時点では、提供先の引受保険会社等が確定できないことがあるため、その所在する国や当該国の"
    "個人情報保護制度および当該引受保険会社等が講じる個人データの安全管理措置をあらかじめ特定できません。"
    "ただし、提供する可能性がある引受保険会社等の所在国は次のとおりです。",
    "当該国の個人情報保護制度等につきましては、個人情報保護委員会が公表している「外国における個人情報の保護に"
    "関する制度等の調査」をご確認ください。",
    "引受保険会社等が決定した後、ご本人の求めに応じて引受保険会社等の国名等の情報を提供します。",
)
_PPC_FOREIGN_SYSTEMS = "https://www.ppc.go.jp/personalinfo/legal/kaiseihogohou/#gaikoku"
_SECTION_8 = (
    "保険業法施行規則第53条の10に基づき、お客さまの人種、信条、門地、本籍地などのセンシティブ情報については、"
    "保険業の適切な業務運営を確保するため に必要な範囲で取得、利用または第三者提供を行います。",
    "センシティブ情報については、金融分野における個人情報に関するガイドラインにおいて利用目的が限定されている"
    "ことを踏まえ、限定されている目的以外では利用または第三者提供いたしません。",
)


def render_handling(policy: Policy) -> str:
    """The sections of the insurer's 個人情報の取扱いについて that the policy governs, in its words:
    1 (its purposes of use), 5 (the bases it provides personal data outside on), 6 (provision
    abroad, with the countries of ``foreign_provision``) and 8 (sensitive data). Empty when the
    policy holds no insurer's notice."""
    handling = policy.handling
    if handling is None:
        return ""
    countries = "、".join(COUNTRY_JA.get(c, c) for c in policy.foreign_provision.allowed_countries)
    sections = [
        [
            "1 個人情報の利用目的",
            "",
            _SECTION_1_LEAD,
            "",
            *[f"  {p.ordinal}. {p.ja}" for p in handling.purposes],
            "",
            _SECTION_1_TAIL,
        ],
        [
            "5 個人情報の提供",
            "",
            _SECTION_5_LEAD,
            "",
            *[f"  {n}. {BASES[basis].ja}" for n, basis in enumerate(handling.bases, start=1)],
        ],
    ]
    if policy.foreign_provision.allowed_countries:
        first, second, third, fourth = _SECTION_6
        sections.append(
            [
                f"6 {BASES[LegalBasis.FOREIGN].ja}",
                "",
                f"  1. {first}",
                f"  2. {second}",
                f"    {countries}",
                f"  3. {third}",
                f"    {_PPC_FOREIGN_SYSTEMS}",
                f"  4. {fourth}",
            ]
        )
    if handling.sensitive_purposes:
        sections.append(["8 センシティブ情報の取扱い", "", *_SECTION_8])
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"
