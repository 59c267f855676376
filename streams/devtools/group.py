"""The notice with more group companies among its joint users: the J:COM group has many companies
(the notice points to a list of them), the shipped policy names two. Benchmarks measure the cost per
joint user with it; property tests draw group companies with their own declared purposes."""

from __future__ import annotations

from collections.abc import Sequence

from streams.policy.loader import PolicySet, parse_policy

JOINT_USERS_ANCHOR = "\njoint_users:\n"


def group_company_ids(count: int) -> list[str]:
    """Ids of ``count`` made-up group companies (not in the seed): jcom-group-01, jcom-group-02, ..."""
    return [f"jcom-group-{n:02d}" for n in range(1, count + 1)]


def with_group_companies(policy_text: str, companies: Sequence[tuple[str, Sequence[str] | None]]) -> PolicySet:
    """The policy of ``policy_text`` with ``companies`` added to its joint users: (id, declared
    purposes, or None for every purpose of the notice)."""
    return PolicySet.of([parse_policy(group_policy_text(policy_text, companies), source="<group policy>")])


def group_policy_text(policy_text: str, companies: Sequence[tuple[str, Sequence[str] | None]]) -> str:
    """The YAML of ``with_group_companies`` (for a worker, which reads its policy from a file)."""
    if JOINT_USERS_ANCHOR not in policy_text:
        raise ValueError("the policy has no top-level joint_users list")
    lines = []
    for company, purposes in companies:
        declared = "" if purposes is None else f", purposes: [{', '.join(purposes)}]"
        names = f"name_ja: グループ会社 {company}, name_en: Group company {company}"
        lines.append(f"  - {{id: {company}, {names}{declared}}}\n")
    return policy_text.replace(JOINT_USERS_ANCHOR, JOINT_USERS_ANCHOR + "".join(lines), 1)
