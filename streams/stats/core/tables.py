"""The statistics tables (統計加工): every value each dimension can take (a closed list, known to
anyone reading a table) and the cells a shared record is in. Pure. What keeps a published table from
being traced back to a customer is in ``streams.stats.core.suppression``."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.policy.model import CATEGORICAL, Policy, Statistics, StatsTable

OTHER = "other"  # a value not in the closed list, or none at all
PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県",
    "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)  # fmt: skip
Cell = tuple[str, ...]


def age_labels(stats: Statistics) -> tuple[str, ...]:
    return _age_labels(stats.age_bands)


@functools.cache
def _age_labels(starts: tuple[int, ...]) -> tuple[str, ...]:
    edges = (0, *starts)
    bands = [f"{low}-{high - 1}" for low, high in itertools.pairwise(edges)]
    return (*bands, f"{edges[-1]}+", OTHER)


def domain(name: str, policy: Policy) -> tuple[str, ...]:
    """Every value a dimension can take: a closed list, known to anyone reading the table."""
    stats = policy.statistics
    if name == "prefecture":
        return (*PREFECTURES, OTHER)
    if name == "age_band":
        return age_labels(stats)
    if name == "purpose":
        return tuple(p.id for p in policy.purposes)
    if name in CATEGORICAL:
        return (*stats.values[name], OTHER)
    raise ValueError(f"unknown dimension {name}")


_BY_LENGTH = {n: frozenset(p for p in PREFECTURES if len(p) == n) for n in {len(p) for p in PREFECTURES}}


def prefecture_of(address: Any) -> str:
    """The prefecture an address starts with (3 or 4 characters; none is a prefix of another)."""
    if isinstance(address, str):
        for length, names in _BY_LENGTH.items():
            if address[:length] in names:
                return address[:length]
    return OTHER


def _birth_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return dt.date(1970, 1, 1) + dt.timedelta(days=value)  # Avro's date: days since 1970-01-01
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def age_band_of(value: Any, on: dt.date, stats: Statistics) -> str:
    born = _birth_date(value)
    if born is None or born > on:
        return OTHER
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    labels = age_labels(stats)
    for index, edge in enumerate(stats.age_bands):
        if age < edge:
            return labels[index]
    return labels[len(stats.age_bands)]


def _listed(value: Any, allowed: Sequence[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


@dataclass(frozen=True)
class Features:
    """What the dimensions read from one record, once for every table."""

    single: Mapping[str, str]  # prefecture, gender, payment_status
    birth_date: Any
    pairs: frozenset[tuple[str, str]]  # (service, plan) per service used


def features_of(record: Mapping[str, Any], stats: Statistics) -> Features:
    values = stats.values
    listed = record.get("service_usage")
    usages: list[Any] = listed if isinstance(listed, list) else []
    services, plans = values.get("service", ()), values.get("plan", ())
    pairs = frozenset(
        (_listed(u.get("service"), services), _listed(u.get("plan"), plans)) for u in usages if isinstance(u, Mapping)
    ) or frozenset({(OTHER, OTHER)})
    payment = record.get("payment_status")
    single = {
        "prefecture": prefecture_of(record.get("address")),
        "gender": _listed(record.get("gender"), values.get("gender", ())),
        "payment_status": _listed(
            payment.get("status") if isinstance(payment, Mapping) else None, values.get("payment_status", ())
        ),
    }
    return Features(single, record.get("birth_date"), pairs)


def table_cells(
    features: Features, table: StatsTable, policy: Policy, *, purposes: Iterable[str], on: dt.date
) -> frozenset[Cell]:
    single = dict(features.single)
    if "age_band" in table.dimensions:
        single["age_band"] = age_band_of(features.birth_date, on, policy.statistics)
    multiple = {"service", "plan", "purpose"}.intersection(table.dimensions)
    if not multiple:  # one value per dimension: one cell
        return frozenset({tuple(single[name] for name in table.dimensions)})
    pairs = features.pairs
    shared_for = sorted(set(purposes).intersection(policy.purpose_ids))
    choices: list[list[dict[str, str]]] = []
    if "service" in table.dimensions or "plan" in table.dimensions:
        choices.append([{"service": s, "plan": p} for s, p in sorted(pairs)])
    if "purpose" in table.dimensions:
        if not shared_for:
            return frozenset()  # shared for no purpose: nothing to count
        choices.append([{"purpose": p} for p in shared_for])
    cells = set()
    for combination in itertools.product(*choices):
        found = dict(single)
        for part in combination:
            found.update(part)
        cells.add(tuple(found[name] for name in table.dimensions))
    return frozenset(cells)
