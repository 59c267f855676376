"""The joint-use notice as data: frozen pydantic models, validated keys, no behaviour beyond lookups."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from streams.policy.bases import BASES, LegalBasis
from streams.policy.calendar import JST
from streams.policy.classification import FieldClass

_COMPANY_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ITEM_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PURPOSE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _matches(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"not a valid {what} (expected pattern {pattern.pattern})")
        return value

    return AfterValidator(check)


# A company's consumer groups and transactional ids are ``<prefix>.<company>.*``: these ids would
# give it the pipeline's, the privacy desk's or the retention job's (and let it fence their producers).
RESERVED_COMPANY_IDS = frozenset({"pipeline", "auditor", "retention"})


def _not_reserved(value: str) -> str:
    if value in RESERVED_COMPANY_IDS:
        raise ValueError(
            f"a company id must not be one of the deployment's own names ({', '.join(sorted(RESERVED_COMPANY_IDS))})"
        )
    return value


CompanyId = Annotated[str, _matches(_COMPANY_ID, "company id"), AfterValidator(_not_reserved)]
ItemId = Annotated[str, _matches(_ITEM_ID, "item id")]
PurposeId = Annotated[str, _matches(_PURPOSE_ID, "purpose id")]
CountryCode = Annotated[str, _matches(_COUNTRY, "ISO 3166-1 alpha-2 country code")]


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset, e.g. 2026-01-01T00:00:00+09:00")
    return value


AwareDatetime = Annotated[dt.datetime, AfterValidator(_aware)]


def _duration(value: str) -> str:
    match = _DURATION.fullmatch(value)
    if not match or not any(match.groups()):
        raise ValueError("must be an ISO 8601 duration in years/months/weeks/days, e.g. P5Y or P90D")
    return value


RetentionPeriod = Annotated[str, AfterValidator(_duration)]


def retention_days(period: str) -> int:
    """Days in an ISO 8601 duration, counting a year as 365 days and a month as 30 (a lower bound is
    not wanted here: retention must not end early, so the longer calendar reading is irrelevant)."""
    match = _DURATION.fullmatch(period)
    if not match:
        raise ValueError("not an ISO 8601 duration")
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    return years * 365 + months * 30 + weeks * 7 + days


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResponsibleParty(_Frozen):
    """The party responsible for managing the jointly used data (APPI Art. 27(5)(iii))."""

    name_ja: str = Field(description="Legal name in Japanese.")
    name_en: str = Field(description="Legal name in English.")
    role_ja: str = Field("", description="Role of the responsible person, e.g. 個人情報保護管理者.")
    address_ja: str = Field(description="Address as published.")
    representative_ja: str = Field(description="Name of the representative as published.")


class AcquisitionMethod(_Frozen):
    """How the jointly used data was obtained (取得方法)."""

    id: str = Field(description="Stable identifier.")
    ja: str = Field(description="Japanese label as published.")
    en: str = Field(description="English label.")


class Notice(_Frozen):
    """The published facts of one version of the joint-use notice."""

    id: CompanyId = Field(description="Notice id; every version of one notice shares it.")
    version: str = Field(min_length=1, description="Version label, unique per notice.")
    published_at: dt.date = Field(description="Date the version was published.")
    effective_from: AwareDatetime = Field(description="Records timed at or after this are processed under it.")
    statistical_processing: bool = Field(False, description="Whether used data may be statistically processed.")
    responsible_party: ResponsibleParty = Field(description="Who is responsible for the joint use.")
    acquisition_methods: tuple[AcquisitionMethod, ...] = Field(description="How the data was obtained.")
    exclusion_ja: str = Field("", description="Published exclusion, e.g. 通信の秘密に抵触する情報は除く.")
    exclusion_en: str = Field("", description="The exclusion in English.")

    @model_validator(mode="after")
    def _published_before_effective(self) -> Notice:
        # A notice takes effect once published (APPI Art. 27(5)(iii): known to the subject
        # beforehand): its effective day, in Japan, is on or after its publication day.
        if self.effective_from.astimezone(JST).date() < self.published_at:
            raise ValueError("effective_from is before published_at: a notice takes effect only once published")
        return self


class Item(_Frozen):
    """An item of personal data that the notice names (共同して利用する個人情報の項目)."""

    id: ItemId = Field(description="Stable identifier, referenced by schema fields' jointuse.item.")
    ja: str = Field(description="Japanese label as published.")
    en: str = Field(description="English label.")
    retention: RetentionPeriod = Field(description="ISO 8601 duration after which recipients must erase it.")


class Purpose(_Frozen):
    """A purpose of use of the joint users (共同して利用する者の利用目的)."""

    id: PurposeId = Field(description="Stable dotted id, e.g. jointuse.billing.")
    ordinal: int = Field(ge=1, description="Position in the published list, from 1.")
    ja: str = Field(description="Japanese text, verbatim as published.")
    en: str = Field(description="English text.")
    marketing: bool = Field(False, description="Removed from a record whose subject opted out of marketing.")


class ItemPurposes(_Frozen):
    """Which items may serve which purposes. ``default`` applies to items not listed in ``items``."""

    default: Literal["all", "none"] = Field("all", description="Purposes of items not listed: all or none.")
    items: dict[ItemId, tuple[PurposeId, ...]] = Field(
        default_factory=dict, description="Per item, the purposes it may serve."
    )


class JointUser(_Frozen):
    """A company within the scope of joint users (共同して利用する者の範囲)."""

    id: CompanyId = Field(description="Company id used in topics, headers and records.")
    name_ja: str = Field(description="Legal name in Japanese.")
    name_en: str = Field("", description="Legal name in English.")
    purposes: tuple[PurposeId, ...] | None = Field(
        None, description="Purposes the company declared; None means every purpose of the notice."
    )


class ForeignProvision(_Frozen):
    """Provision abroad as the notice publishes it (section 6): the countries a recipient may be in.
    The recipients themselves are channels of ``handling`` under the ``foreign`` basis."""

    allowed_countries: tuple[CountryCode, ...] = Field(
        default=(), description="Countries a recipient abroad may be in (the notice's section 6)."
    )

    @model_validator(mode="before")
    @classmethod
    def _recipients_are_channels(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ({"recipients", "provider"} & set(data)):
            raise ValueError(
                "foreign_provision lists only allowed_countries: a recipient abroad is a channel of handling "
                "with basis foreign and its country, and handling.provider is its provider"
            )
        return data


class Channel(_Frozen):
    """A recipient outside the group's joint use, under one legal basis of the insurer's notice
    (個人情報の取扱いについて, section 5). ``streams.policy.bases`` says what each basis allows; a
    channel narrows it to the items, fields and purposes named here (deny by default)."""

    id: CompanyId = Field(description="Recipient id, used in topics, headers and records.")
    basis: LegalBasis = Field(description="The legal basis of every provision to it (streams.policy.bases).")
    name_ja: str = Field(description="Legal name in Japanese.")
    name_en: str = Field("", description="Legal name in English.")
    purposes: tuple[PurposeId, ...] = Field(
        min_length=1, description="The insurer's purposes (handling.purposes) its provisions serve."
    )
    items: tuple[ItemId, ...] = Field(default=(), description="Items of the notice it may receive.")
    insurer_fields: tuple[str, ...] = Field(
        default=(), description="Top-level insurer-only fields it may receive (e.g. policy, claims)."
    )
    sensitive_fields: tuple[str, ...] = Field(
        default=(),
        description="Top-level sensitive fields it may receive: only on a basis that may carry them, and "
        "only for purposes the guideline allows (handling.sensitive_purposes).",
    )
    task_ja: str = Field("", description="Entrustment: the task entrusted (委託業務), as contracted.")
    contract: str = Field("", description="The contract with the recipient: entrustment contract, reinsurance treaty.")
    consent_reference: str = Field(
        "", description="Where subjects consented to this provision (e.g. the application form's clause)."
    )
    country: CountryCode | None = Field(
        None, description="A recipient abroad (basis foreign): its country, one of foreign_provision's."
    )

    @model_validator(mode="after")
    def _within_its_basis(self) -> Channel:
        rules = BASES[self.basis]
        where = f"channel {self.id!r} ({self.basis})"
        if self.basis is LegalBasis.JOINT_USE:
            raise ValueError(f"{where}: joint users are listed under joint_users")
        if (self.country is not None) is not (self.basis is LegalBasis.FOREIGN):
            raise ValueError(f"{where}: a recipient abroad, and only one, names its country")
        for name, listed in (
            ("items", self.items),
            ("insurer_fields", self.insurer_fields),
            ("sensitive_fields", self.sensitive_fields),
            ("purposes", self.purposes),
        ):
            if len(set(listed)) != len(listed):
                raise ValueError(f"{where}: {name} lists a value twice")
        if self.insurer_fields and FieldClass.INSURER_ONLY not in rules.classes:
            raise ValueError(f"{where}: the basis never carries insurer-only fields")
        if self.sensitive_fields and not rules.may_carry_sensitive:
            raise ValueError(f"{where}: the basis never carries sensitive data")
        if self.basis is LegalBasis.ENTRUSTMENT and not (self.task_ja and self.contract):
            raise ValueError(f"{where}: an entrustment names its task (task_ja) and contract")
        if self.basis in (LegalBasis.REINSURANCE, LegalBasis.FOREIGN) and not self.contract:
            raise ValueError(f"{where}: a reinsurance channel names its treaty (contract)")
        if rules.consent_required and not self.consent_reference:
            raise ValueError(
                f"{where}: the basis needs the subject's consent; name where it is given (consent_reference)"
            )
        return self


class Handling(_Frozen):
    """The insurer's own notice (個人情報の取扱いについて): its purposes of use (section 1), the
    purposes sensitive data may serve (section 8) and every channel of provision outside (section 5,
    and section 6's recipients abroad)."""

    provider: CompanyId = Field(
        description="The joint user whose notice this is, and whose customers' data it provides."
    )
    purposes: tuple[Purpose, ...] = Field(min_length=1, description="Its purposes of use, in published order.")
    sensitive_purposes: tuple[PurposeId, ...] = Field(
        default=(),
        description="The purposes for which sensitive data may be used or provided (the guideline's list, "
        "e.g. underwriting, claims payment, reinsurance); none: never.",
    )
    bases: tuple[LegalBasis, ...] = Field(
        default=(),
        description="The bases of provision outside that the notice publishes (section 5), in its order; "
        "a channel may only be under one of them.",
    )
    channels: tuple[Channel, ...] = Field(default=(), description="Recipients outside the joint use.")
    consent_evidence: str = Field(
        "policy",
        description="The top-level insurer-only field whose presence shows the subject holds a contract, "
        "and so gave the consents its application asks for (the channels' consent_reference).",
    )
    provision_record_retention: RetentionPeriod = Field(
        "P3Y", description="How long a provision record is kept (APPI rules Art. 14: 3 years in general)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Handling:
        _unique("handling purpose", [p.id for p in self.purposes])
        _unique("channel", [c.id for c in self.channels])
        _ordinals("handling purpose", [p.ordinal for p in self.purposes])
        known = {p.id for p in self.purposes}
        _known("handling.sensitive_purposes", self.sensitive_purposes, known)
        allowed = set(self.sensitive_purposes)
        if len(set(self.bases)) != len(self.bases):
            raise ValueError("handling.bases lists a basis twice")
        for basis in self.bases:
            if basis in (LegalBasis.JOINT_USE, LegalBasis.FOREIGN):
                raise ValueError(f"handling.bases: {basis} has a section of its own, not section 5")
        for channel in self.channels:
            if channel.basis is not LegalBasis.FOREIGN and channel.basis not in self.bases:
                raise ValueError(f"channel {channel.id!r}: its basis {channel.basis} is not published (handling.bases)")
            _known(f"channel {channel.id!r}", channel.purposes, known)
            if channel.sensitive_fields:
                beyond = sorted(set(channel.purposes) - allowed)
                if beyond:
                    raise ValueError(
                        f"channel {channel.id!r} carries sensitive data for purposes the guideline does not "
                        f"allow (not in handling.sensitive_purposes): {beyond}"
                    )
        return self


_TABLE_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TableId = Annotated[str, _matches(_TABLE_ID, "statistics table id")]
DimensionName = Literal["prefecture", "age_band", "gender", "service", "plan", "payment_status", "purpose"]
# The item a dimension reads: a table may only use a dimension whose item the notice names.
DIMENSION_ITEMS: dict[str, str | None] = {
    "prefecture": "address",
    "age_band": "birth_date",
    "gender": "gender",
    "service": "service_usage",
    "plan": "service_usage",
    "payment_status": "payment_status",
    "purpose": None,  # the purposes a record is shared for: the notice's own list
}
# Dimensions whose values are the record's free text: each needs a closed list of values here.
CATEGORICAL = ("gender", "service", "plan", "payment_status")


class StatsTable(_Frozen):
    """One statistics table (統計加工): counts of distinct subjects per cell, per window."""

    id: TableId = Field(description="Stable id; the table is published to <prefix>.stats.<id>.v1.")
    window: Literal["daily", "weekly"] = Field(description="Tumbling window in Japan's calendar (weeks start Monday).")
    dimensions: tuple[DimensionName, ...] = Field(
        min_length=1, max_length=3, description="What the cells are broken down by (at most 3)."
    )
    recipients: tuple[CompanyId, ...] = Field(min_length=1, description="Joint users the table is published to.")


class Statistics(_Frozen):
    """Statistics from the shared records, with disclosure control (see docs/statistics.md)."""

    k: int = Field(10, ge=2, description="A published cell counts at least this many subjects.")
    age_bands: tuple[int, ...] = Field(
        (20, 30, 40, 50, 60, 70),
        description="Ages where a new band starts, ascending; the first band is 0 to the first.",
    )
    values: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="The closed list of values of each categorical dimension (gender, service, plan, "
        "payment_status); anything else counts as 'other'.",
    )
    tables: tuple[StatsTable, ...] = Field(default=(), description="The tables published.")

    @model_validator(mode="after")
    def _consistent(self) -> Statistics:
        if list(self.age_bands) != sorted(set(self.age_bands)) or any(a <= 0 for a in self.age_bands):
            raise ValueError("statistics.age_bands must be ascending whole ages above 0")
        for name, listed in self.values.items():
            if name not in CATEGORICAL:
                raise ValueError(f"statistics.values: {name!r} is not a categorical dimension")
            if len(set(listed)) != len(listed) or not listed:
                raise ValueError(f"statistics.values.{name}: must be a non-empty list without repeats")
        _unique("statistics table", [t.id for t in self.tables])
        for table in self.tables:
            if len(set(table.dimensions)) != len(table.dimensions):
                raise ValueError(f"statistics table {table.id!r}: a dimension is listed twice")
            for name in table.dimensions:
                if name in CATEGORICAL and name not in self.values:
                    raise ValueError(f"statistics table {table.id!r}: {name} needs statistics.values.{name}")
        return self


class Policy(_Frozen):
    """One published version of a joint-use notice, as enforced by the pipeline."""

    notice: Notice = Field(description="Published facts of this version.")
    items: tuple[Item, ...] = Field(min_length=1, description="Items that may be shared.")
    purposes: tuple[Purpose, ...] = Field(min_length=1, description="Purposes, in published order.")
    item_purposes: ItemPurposes = Field(default_factory=ItemPurposes, description="Item → purposes.")
    joint_users: tuple[JointUser, ...] = Field(min_length=1, description="Companies in the joint-use scope.")
    foreign_provision: ForeignProvision = Field(
        default_factory=ForeignProvision, description="Third-party provision abroad."
    )
    statistics: Statistics = Field(default_factory=Statistics, description="Statistics tables (統計加工).")
    handling: Handling | None = Field(
        None, description="The insurer's own notice: its purposes and its channels of provision outside."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        _unique("item", [i.id for i in self.items])
        _unique("purpose", [p.id for p in self.purposes])
        _unique("joint user", [u.id for u in self.joint_users])
        _ordinals("purpose", [p.ordinal for p in self.purposes])
        purpose_ids = {p.id for p in self.purposes}
        item_ids = {i.id for i in self.items}
        for item_id, purposes in self.item_purposes.items.items():
            if item_id not in item_ids:
                raise ValueError(f"item_purposes names unknown item {item_id!r}")
            _known("item_purposes", purposes, purpose_ids)
        for user in self.joint_users:
            _known(f"joint user {user.id!r}", user.purposes or (), purpose_ids)
        if self.handling is not None:
            self._check_handling(self.handling, item_ids, purpose_ids)
        for table in self.statistics.tables:
            if not self.notice.statistical_processing:
                raise ValueError(f"statistics table {table.id!r}: the notice does not publish statistical processing")
            for name in table.dimensions:
                item = DIMENSION_ITEMS[name]
                if item is not None and item not in item_ids:
                    raise ValueError(
                        f"statistics table {table.id!r}: {name} reads {item}, which the notice does not name"
                    )
            strangers = sorted(set(table.recipients) - {u.id for u in self.joint_users})
            if strangers:
                raise ValueError(f"statistics table {table.id!r}: recipients {strangers} are not joint users")
        return self

    def _check_handling(self, handling: Handling, item_ids: set[str], purpose_ids: set[str]) -> None:
        users = {u.id: u for u in self.joint_users}
        if handling.provider not in users:
            raise ValueError(f"handling.provider {handling.provider!r} is not a joint user")
        shared = sorted({p.id for p in handling.purposes} & purpose_ids)
        if shared:
            raise ValueError(f"handling purposes {shared} are also joint-use purposes: one id, one purpose")
        # A channel's topics and ACLs are named by its id: it must not be a joint user's. Nor may a
        # joint user receive sensitive data under another name.
        group_names = {u.name_ja for u in self.joint_users}
        allowed_countries = set(self.foreign_provision.allowed_countries)
        for channel in handling.channels:
            if channel.id in users:
                raise ValueError(f"channel {channel.id!r} has the id of a joint user")
            if channel.country is not None and channel.country not in allowed_countries:
                raise ValueError(
                    f"channel {channel.id!r} is in a country the notice does not publish (foreign_provision)"
                )
            if channel.sensitive_fields and channel.name_ja in group_names:
                raise ValueError(
                    f"channel {channel.id!r} is a joint user by name: a joint user never receives sensitive data"
                )
            unknown = sorted(set(channel.items) - item_ids)
            if unknown:
                raise ValueError(f"channel {channel.id!r} names unknown items {unknown}")

    @property
    def version(self) -> str:
        return self.notice.version

    @cached_property
    def item_ids(self) -> frozenset[str]:
        return frozenset(i.id for i in self.items)

    @cached_property
    def purpose_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.purposes)

    @cached_property
    def marketing_purposes(self) -> frozenset[str]:
        return frozenset(p.id for p in self.purposes if p.marketing)

    @cached_property
    def purposes_of_item(self) -> dict[str, frozenset[str]]:
        everything = frozenset(self.purpose_ids)
        default = everything if self.item_purposes.default == "all" else frozenset()
        listed = self.item_purposes.items
        return {item.id: frozenset(listed[item.id]) if item.id in listed else default for item in self.items}

    @cached_property
    def users_by_id(self) -> dict[str, JointUser]:
        return {u.id: u for u in self.joint_users}

    @cached_property
    def channels_by_id(self) -> dict[str, Channel]:
        return {c.id: c for c in self.handling.channels} if self.handling is not None else {}

    def declared_purposes(self, company: str) -> frozenset[str]:
        """The purposes a joint user declared; empty for a company that is not a joint user."""
        user = self.users_by_id.get(company)
        if user is None:
            return frozenset()
        return frozenset(user.purposes) if user.purposes is not None else frozenset(self.purpose_ids)


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for key in ids:
        if key in seen:
            raise ValueError(f"duplicate {what} id {key!r}")
        seen.add(key)


def _ordinals(what: str, ordinals: list[int]) -> None:
    if ordinals != list(range(1, len(ordinals) + 1)):
        missing = sorted(set(range(1, max(ordinals) + 1)) - set(ordinals))
        repeated = sorted({o for o in ordinals if ordinals.count(o) > 1})
        detail = (
            f"{what} {missing[0]} is missing"
            if missing
            else f"{what} {repeated[0]} is listed twice"
            if repeated
            else "they are listed out of order"
        )
        raise ValueError(f"{what} ordinals must be 1, 2, 3, ... in the order listed: {detail}")


def _known(where: str, purposes: tuple[str, ...], known: set[str]) -> None:
    unknown = sorted(set(purposes) - known)
    if unknown:
        raise ValueError(f"{where} names unknown purposes {unknown}")
