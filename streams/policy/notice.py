"""Rendering the public joint-use notice from the same policy the pipeline enforces."""

from __future__ import annotations

from typing import Literal

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
