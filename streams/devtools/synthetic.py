"""Synthetic customer records in JSON form, deterministic by seed.

Names and addresses look Japanese but belong to nobody. A configurable share of records carries
secrecy-of-communications and sensitive content, marketing opt-outs, joint-use stops and invalid
lines, so that every rule of the pipeline is exercised.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.policy.calendar import JST

_SURNAMES = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
]
_GIVEN = [
    ("陽翔", "ハルト", "male"),
    ("蓮", "レン", "male"),
    ("湊", "ミナト", "male"),
    ("大翔", "ヒロト", "male"),
    ("結菜", "ユイナ", "female"),
    ("陽葵", "ヒマリ", "female"),
    ("芽依", "メイ", "female"),
    ("さくら", "サクラ", "female"),
    ("健一", "ケンイチ", "male"),
    ("美咲", "ミサキ", "female"),
    ("翼", "ツバサ", "other"),
]
_PLACES = [
    ("東京都", "千代田区丸の内", "100-0005"),
    ("東京都", "世田谷区三軒茶屋", "154-0024"),
    ("神奈川県", "横浜市中区山下町", "231-0023"),
    ("大阪府", "大阪市北区梅田", "530-0001"),
    ("埼玉県", "さいたま市浦和区高砂", "330-0063"),
    ("千葉県", "千葉市中央区富士見", "260-0015"),
    ("福岡県", "福岡市博多区博多駅前", "812-0011"),
    ("北海道", "札幌市中央区北一条西", "060-0001"),
    ("兵庫県", "神戸市中央区三宮町", "650-0021"),
    ("宮城県", "仙台市青葉区一番町", "980-0811"),
]
_OCCUPATIONS = ["会社員", "公務員", "自営業", "学生", "パート・アルバイト", "無職", None]
_SERVICES = [
    ("cable_tv", ["basic", "premium"]),
    ("internet", ["1G", "320M"]),
    ("phone", ["home"]),
    ("mobile", ["S", "M"]),
    ("electricity", ["standard"]),
]
_CHANNELS = ["phone", "web", "chat", "shop"]
_TOPICS = ["billing", "outage", "plan_change", "moving", "equipment"]
_PROGRAMS = [
    ("J:COMテレビ", "地域ニュース"),
    ("BS1", "ドキュメンタリー"),
    ("映画専門ch", "名作劇場"),
    ("スポーツch", "プロ野球中継"),
    ("キッズch", "アニメ"),
]
_SENSITIVE = [
    "race",
    "creed",
    "social_status",
    "medical_history",
    "criminal_record",
    "family_origin",
    "registered_domicile",
    "union_membership",
    "health_checkup",
    "sex_life",
]


@dataclass(frozen=True)
class Mix:
    """Shares (0..1) of records carrying each kind of content."""

    secrecy: float = 0.3
    sensitive: float = 0.2
    insurer: float = 0.3
    marketing_opt_out: float = 0.15
    joint_use_stop: float = 0.05
    invalid: float = 0.02


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class Generator:
    def __init__(
        self,
        *,
        seed: int = 0,
        sources: tuple[str, ...] = ("jcom", "jcom-insurance"),
        mix: Mix | None = None,
        start: dt.datetime | None = None,
        first_index: int = 0,
    ) -> None:
        """Record ``n`` (from ``first_index``) is of customer ``<source>-<n>`` and updated at ``start``
        (2026-03-01 09:00 in Japan unless given) plus ``n - first_index`` seconds."""
        self.random = random.Random(seed)
        self.first_index = first_index
        self.sources = sources
        self.mix = mix or Mix()
        self.start = start or dt.datetime(2026, 3, 1, 9, 0, tzinfo=JST)

    def records(self, count: int) -> Iterator[tuple[str, dict[str, Any] | str]]:
        """Yields ``(source company, record)``; an invalid record may be a raw string line."""
        for index in range(self.first_index, self.first_index + count):
            source = self.sources[index % len(self.sources)]
            if self.random.random() < self.mix.invalid:
                yield source, self._invalid(index, source)
            else:
                yield source, self.record(index, source)

    def lines_by_source(self, count: int) -> dict[str, list[bytes]]:
        """``count`` records as JSON Lines (UTF-8), grouped by source company."""
        lines: dict[str, list[bytes]] = {source: [] for source in self.sources}
        for source, record in self.records(count):
            lines[source].append(to_line(record).encode())
        return lines

    def _moment(self, max_days: int = 400) -> dt.datetime:
        return self.start - dt.timedelta(seconds=self.random.randrange(max_days * 86_400))

    def record(self, index: int, source: str) -> dict[str, Any]:
        r = self.random
        surname, surname_kana = r.choice(_SURNAMES)
        given, given_kana, gender = r.choice(_GIVEN)
        prefecture, town, postal = r.choice(_PLACES)
        chome = f"{r.randint(1, 9)}-{r.randint(1, 30)}-{r.randint(1, 20)}"
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=r.randrange(365 * 65))
        customer_id = f"{source}-{index:08d}"
        rec: dict[str, Any] = {
            "customer_id": customer_id,
            "source_company": source,
            "name": f"{surname} {given}",
            "name_kana": f"{surname_kana} {given_kana}",
            "address": f"{prefecture}{town}{chome}",
            "postal_code": postal,
            "phone": f"0{r.randint(3, 9)}-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}",
            "gender": gender,
            "birth_date": birth.isoformat(),
            "email": f"user{index}.{r.randint(100, 999)}@example.jp",
            "occupation": r.choice(_OCCUPATIONS),
            "service_usage": [self._service()],
            "inquiry_history": [
                {"at": _iso(self._moment()), "channel": r.choice(_CHANNELS), "topic": r.choice(_TOPICS)}
            ],
            "viewing_history": [self._viewing()],
            "payment_status": {
                "status": r.choice(["paid", "paid", "paid", "overdue"]),
                "last_paid_at": _iso(self._moment(60)),
                "overdue_amount_jpy": r.choice([0, 0, 0, 3300, 5500]),
            },
            "call_records": None,
            "communication_logs": None,
            "message_contents": None,
            "browsing_history": None,
            "cell_location_history": None,
            **{name: None for name in _SENSITIVE},
            "policy": None,
            "claims": None,
            "consent": {
                "marketing_opt_out": r.random() < self.mix.marketing_opt_out,
                "joint_use_stop": r.random() < self.mix.joint_use_stop,
                "foreign_transfer_consent": r.random() < 0.3,
            },
            "updated_at": _iso(self.start + dt.timedelta(seconds=index - self.first_index)),
        }
        if r.random() < self.mix.secrecy:
            self._add_secrecy(rec)
        if r.random() < self.mix.sensitive:
            for name in r.sample(_SENSITIVE, r.randint(1, 3)):
                rec[name] = f"SECRET-{name}-{index}"
        if r.random() < self.mix.insurer:
            rec["policy"] = {
                "policy_no": f"P{index:09d}",
                "product": "家財保険",
                "premium_jpy": r.randint(300, 3000),
                "started_at": (self.start.date() - dt.timedelta(days=r.randrange(700))).isoformat(),
            }
            rec["claims"] = [
                {
                    "claim_no": f"C{index:09d}",
                    "amount_jpy": r.randint(1000, 100_000),
                    "diagnosis": f"SECRET-diagnosis-{index}",
                }
            ]
        return rec

    def _service(self) -> dict[str, Any]:
        service, plans = self.random.choice(_SERVICES)
        started = self._moment(2000)
        return {"service": service, "plan": self.random.choice(plans), "started_at": _iso(started), "ended_at": None}

    def _viewing(self) -> dict[str, Any]:
        channel, program = self.random.choice(_PROGRAMS)
        return {"at": _iso(self._moment(30)), "channel": channel, "program": program}

    def _add_secrecy(self, rec: dict[str, Any]) -> None:
        r = self.random
        index = rec["customer_id"]
        rec["call_records"] = [
            {
                "started_at": _iso(self._moment(30)),
                "callee_number": f"SECRET-090{r.randint(10**7, 10**8 - 1)}",
                "duration_s": r.randint(1, 3600),
            }
        ]
        rec["communication_logs"] = [
            {
                "at": _iso(self._moment(30)),
                "src_ip": "SECRET-10.0.0.1",
                "dst_ip": f"SECRET-203.0.113.{r.randint(1, 254)}",
                "dst_port": 443,
                "bytes": r.randint(100, 10**7),
            }
        ]
        rec["message_contents"] = [f"SECRET-message-{index}"]
        rec["browsing_history"] = [{"at": _iso(self._moment(30)), "url": f"https://SECRET.example/{index}"}]
        rec["cell_location_history"] = [
            {"at": _iso(self._moment(30)), "cell_id": f"SECRET-cell-{index}", "lat": 35.68, "lon": 139.76}
        ]

    def _invalid(self, index: int, source: str) -> dict[str, Any] | str:
        kind = self.random.randrange(5)
        if kind == 0:
            return "{not json"
        rec = self.record(index, source)
        if kind == 1:
            del rec["name"]
        elif kind == 2:
            rec["payment_status"] = {"status": 42}
        elif kind == 3:
            rec["birth_date"] = "not a date"
        else:  # valid for the schema, but published on another company's behalf
            others = [s for s in self.sources if s != source] or ["jcom-impostor"]
            rec["source_company"] = self.random.choice(others)
        return rec


def to_line(record: dict[str, Any] | str) -> str:
    """One JSON Lines line (without the newline); an invalid raw line stays as it is."""
    return record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)
