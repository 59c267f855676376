"""The compiled contributor (the ingest processor's hot path) says what the readable ``contribution``
says, for any record, purposes, time and table layout."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.policy.model import Policy
from streams.stats.core.contributions import Contributor, contribution
from streams.stats.core.tables import PREFECTURES
from tests.conftest import POLICY_PATH
from tests.records import make_native_records

_SHIPPED = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))


def _policy(tables: list[dict[str, Any]] | None = None) -> Policy:
    data = copy.deepcopy(_SHIPPED)
    if tables is not None:
        data["statistics"]["tables"] = tables
    return Policy.model_validate(data)


# The shipped tables, and every way a table can be laid out: a purpose, an age band beside a list,
# one dimension, daily and weekly.
POLICIES = [
    _policy(),
    _policy(
        [
            {"id": "by_purpose", "window": "weekly", "dimensions": ["purpose", "age_band"], "recipients": ["jcom"]},
            {"id": "service_gender", "window": "daily", "dimensions": ["service", "gender"], "recipients": ["jcom"]},
            {"id": "regions", "window": "daily", "dimensions": ["prefecture"], "recipients": ["jcom"]},
            {
                "id": "plans_by_age",
                "window": "weekly",
                "dimensions": ["age_band", "plan", "purpose"],
                "recipients": ["jcom"],
            },
        ]
    ),
    _policy([]),
]
CONTRIBUTORS = [Contributor(p) for p in POLICIES]
RECORDS = make_native_records(60, seed=9)
PURPOSES = [p.id for p in POLICIES[0].purposes]
# From before the notice to years after it, with Japan's midnights and Mondays among them.
_JST_MIDNIGHT = int(dt.datetime(2026, 3, 2, tzinfo=dt.timezone(dt.timedelta(hours=9))).timestamp() * 1000)

_addresses = st.one_of(
    st.sampled_from(PREFECTURES).map(lambda p: p + "中央1-2-3"),
    st.sampled_from(["東京", "Tokyo", "", "北海", "神奈川県横浜市"]),
    st.none(),
)
_usage = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "service": st.sampled_from(["cable_tv", "internet", "phone", "mobile", "electricity", "gas", None]),
                "plan": st.sampled_from(["basic", "premium", "1G", "S", "XL", None]),
            }
        ),
        st.just("not a usage"),
    ),
    max_size=4,
)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[str, ...], int]:
    record = copy.deepcopy(draw(st.sampled_from(RECORDS)))
    if draw(st.booleans()):
        record["address"] = draw(_addresses)
    if draw(st.booleans()):
        record["gender"] = draw(st.sampled_from(["male", "female", "other", "x", None]))
    if draw(st.booleans()):
        record["birth_date"] = draw(
            st.one_of(st.integers(-40_000, 25_000), st.none(), st.dates().map(lambda d: d), st.just("1990-04-01"))
        )
    if draw(st.booleans()):
        record["service_usage"] = draw(st.one_of(_usage, st.none()))
    if draw(st.booleans()):
        record["payment_status"] = draw(
            st.one_of(st.none(), st.fixed_dictionaries({"status": st.sampled_from(["paid", "overdue", "late"])}))
        )
    purposes = tuple(draw(st.lists(st.sampled_from([*PURPOSES, "jointuse.unknown"]), max_size=4, unique=True)))
    at_ms = draw(
        st.one_of(
            st.integers(1_600_000_000_000, 1_900_000_000_000),
            st.integers(-3, 3).map(lambda d: _JST_MIDNIGHT + d * 86_400_000 + draw(st.integers(-2, 2))),
        )
    )
    return record, purposes, at_ms


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases(), st.integers(0, len(POLICIES) - 1))
def test_the_compiled_contributor_says_what_contribution_says(
    case: tuple[dict[str, Any], tuple[str, ...], int], which: int
) -> None:
    record, purposes, at_ms = case
    expected = contribution(
        record, POLICIES[which], purposes=purposes, at=dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
    )
    found = CONTRIBUTORS[which](record, purposes=purposes, at_ms=at_ms)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert found["tables"] == expected["tables"] and found["policy_version"] == expected["policy_version"]
    # contribution goes through a float timestamp and may lose the last millisecond; this one is exact.
    assert found["at_ms"] == at_ms and abs(expected["at_ms"] - at_ms) <= 1


def test_a_window_is_japans_day_and_week() -> None:
    contributor = CONTRIBUTORS[0]
    record = RECORDS[0]
    sunday_late = _JST_MIDNIGHT - 1  # 23:59:59.999 on Sunday 1 March 2026 in Japan
    before = contributor(record, purposes=PURPOSES, at_ms=sunday_late)
    after = contributor(record, purposes=PURPOSES, at_ms=_JST_MIDNIGHT)
    assert before is not None and after is not None
    assert before["tables"]["subscribers_by_region"]["window"] == "2026-02-23"
    assert after["tables"]["subscribers_by_region"]["window"] == "2026-03-02"
    assert before["tables"]["services_daily"]["window"] == "2026-03-01"
    assert after["tables"]["services_daily"]["window"] == "2026-03-02"


_AGES_DAILY = _policy([{"id": "ages", "window": "daily", "dimensions": ["age_band"], "recipients": ["jcom"]}])
_AGES = Contributor(_AGES_DAILY)


def test_a_birthday_on_each_band_edge_counts_as_contribution_counts_it() -> None:
    """Birth days on, just before and just after each band's edge, for windows on 28 and 29 February
    and 1 March of leap and common years (someone born on 29 February comes of age on 1 March in a
    common year): the compiled age bands say what ``contribution`` says."""
    epoch = dt.date(1970, 1, 1)
    jst = dt.timezone(dt.timedelta(hours=9))
    days = [dt.date(y, m, d) for y in (2027, 2028) for m, d in ((2, 28), (3, 1), (12, 31), (1, 1))]
    days.append(dt.date(2028, 2, 29))
    checked = 0
    for on in days:
        at_ms = int(dt.datetime.combine(on, dt.time(12), jst).timestamp() * 1000)
        for edge in (0, *_AGES_DAILY.statistics.age_bands):
            for month, day in ((2, 28), (2, 29), (3, 1), (on.month, on.day)):
                try:
                    birthday = dt.date(on.year - edge, month, day)
                except ValueError:  # 29 February of a common year
                    continue
                for shift in (-1, 0, 1):
                    born = (birthday - epoch).days + shift
                    record = {**RECORDS[0], "birth_date": born}
                    expected = contribution(
                        record, _AGES_DAILY, purposes=PURPOSES, at=dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
                    )
                    found = _AGES(record, purposes=PURPOSES, at_ms=at_ms)
                    assert expected is not None and found is not None
                    assert found["tables"] == expected["tables"], (on, born)
                    checked += 1
    assert checked > 500


def test_the_tables_of_one_combination_are_made_once_and_stay_the_same() -> None:
    contributor = Contributor(POLICIES[0])
    first = contributor(RECORDS[0], purposes=tuple(PURPOSES), at_ms=_JST_MIDNIGHT)
    again = contributor(copy.deepcopy(RECORDS[0]), purposes=tuple(PURPOSES), at_ms=_JST_MIDNIGHT + 1)
    assert first is not None and again is not None
    assert again["tables"] is first["tables"] and again["at_ms"] == _JST_MIDNIGHT + 1
    contributor.MAX_KEPT = 1  # a full store starts again: the tables are made anew, and the same
    other = contributor(RECORDS[1], purposes=tuple(PURPOSES), at_ms=_JST_MIDNIGHT)
    third = contributor(RECORDS[0], purposes=tuple(PURPOSES), at_ms=_JST_MIDNIGHT)
    assert other is not None and third is not None
    assert third["tables"] == first["tables"] and third["tables"] is not first["tables"]
