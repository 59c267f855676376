"""The decision: which joint users may receive which items of a record, for which purposes; and what
one channel of the insurer's notice may receive of it (``provide``).

Pure: no I/O, no clocks (the caller passes ``now``), no exceptions for bad records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.policy.bases import BASES, LegalBasis
from streams.policy.classification import ClassifiedSchema, FieldClass, FieldNode, TypeNode, Violation
from streams.policy.decision import Decision, Delivery, DroppedField, Reason, Status
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.policy.projection import Project, drop_scanner, record_projector
from streams.policy.validation import compile_record_check

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# A producer's clock may run a little ahead of the pipeline's; beyond this a record is invalid.
DEFAULT_MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class _Route:
    recipient: str
    purposes: tuple[str, ...]
    items: tuple[str, ...]
    project: Project
    fields: tuple[str, ...] = ()  # a channel's protected fields, by path (Delivery.fields)


class _Versions(NamedTuple):
    """The notice versions that govern one record: in force now, and in force at the record's time.
    A tuple: one is made for every record, at a third of a frozen dataclass's cost."""

    now: Policy
    record: Policy

    @property
    def label(self) -> str:
        return self.now.version


class Engine:
    """Decides records of one governed schema under the versions of one notice."""

    def __init__(
        self,
        schema: ClassifiedSchema,
        policies: PolicySet | Policy,
        *,
        max_clock_skew: dt.timedelta = DEFAULT_MAX_CLOCK_SKEW,
    ) -> None:
        self.schema = schema
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet.of([policies])
        self.max_clock_skew = max_clock_skew
        self._check = compile_record_check(schema)
        # Decoded records fit their types, but a long can still hold a time no calendar can.
        self._decoded_check = compile_record_check(schema, decoded=True)
        self._scan = drop_scanner(schema.root, "", trusted=False)
        self._scan_trusted = drop_scanner(schema.root, "", trusted=True)
        self._routes: dict[tuple[str, str, str, bool, bool], tuple[_Route, ...]] = {}
        self._projectors: dict[tuple[frozenset[str], bool], Project] = {}
        self._purposes: dict[tuple[str, str, bool], tuple[str, ...]] = {}
        self._time_field = next((f for f in schema.fields if f.name == "updated_at" and _is_timestamp(f.type)), None)

    def validate(self, record: Any) -> Violation | None:
        """The first schema violation of a native record, or None."""
        return self._check(record, "")

    def record_time(self, record: Mapping[str, Any]) -> dt.datetime | None:
        """The record's own time (``updated_at``), or None when it has none. Call on validated records."""
        if self._time_field is None:
            return None
        millis = record.get(self._time_field.name)
        return _EPOCH + dt.timedelta(milliseconds=millis) if type(millis) is int else None

    def decide(
        self,
        record: Any,
        source: str,
        *,
        now: dt.datetime,
        policy: Policy | None = None,
        stopped: bool = False,
        trusted: bool = False,
    ) -> Decision:
        """Decide one record in native form (timestamps as epoch millis, dates as epoch days).

        ``now`` is the pipeline's clock. A record is shared only as far as both the version in force
        at ``now`` and the version in force at the record's own ``updated_at`` allow. ``policy``
        forces one version for both (replays). ``stopped`` says a stop-of-use request covers the
        subject. ``trusted`` says the record was decoded from Avro, so its types need no check.
        """
        admitted = self._admit(record, source, now=now, policy=policy, trusted=trusted)
        if isinstance(admitted, Decision):
            return admitted
        key, dropped, versions = admitted
        version = versions.label

        def withheld(reason: Reason, detail: str = "") -> Decision:
            return Decision(Status.WITHHELD, reason, detail, key=key, dropped=dropped, policy_version=version)

        if source not in versions.now.users_by_id or source not in versions.record.users_by_id:
            return withheld(Reason.SOURCE_NOT_JOINT_USER, "the producing company is not a joint user")
        consent = record.get("consent") or {}
        if consent.get("joint_use_stop"):
            return withheld(Reason.JOINT_USE_STOP, "the subject asked to stop joint use")
        if stopped:
            return withheld(Reason.STOP_OF_USE, "a stop-of-use request covers the subject")
        opted_out = bool(consent.get("marketing_opt_out"))
        purposes = self._purposes_for(versions, opted_out)
        routes = self._routes_for(versions, source, opted_out, trusted)
        if not routes:
            return Decision(
                Status.WITHHELD,
                Reason.NO_RECIPIENT,
                "no joint user may receive the record",
                key=key,
                purposes=purposes,
                dropped=dropped,
                policy_version=version,
            )
        # Recipients of the same items get the same projection (one projector per item set): it is
        # made once and shared, read-only, by their deliveries.
        projected: dict[tuple[str, ...], Mapping[str, Any]] = {}
        deliveries = {}
        for r in routes:
            shared = projected.get(r.items)
            if shared is None:
                shared = projected[r.items] = r.project(record)
            deliveries[r.recipient] = Delivery(r.recipient, r.purposes, r.items, shared)
        return Decision(
            Status.SHARED,
            Reason.SHARED,
            key=key,
            purposes=purposes,
            deliveries=deliveries,
            dropped=dropped,
            policy_version=version,
            record_policy_version=versions.record.version,
        )

    def provide(
        self,
        record: Any,
        source: str,
        channel: str,
        *,
        now: dt.datetime,
        policy: Policy | None = None,
        stopped: bool = False,
        trusted: bool = False,
    ) -> Decision:
        """Decide one record for one channel of the insurer's notice (``Policy.handling``): the same
        validation and the same versions as joint use, then the channel's own rules, deny by default.

        Only the provider's own customers' records go, under every version that governs the record:
        the items, fields and purposes all of them allow the channel. A basis that needs consent
        needs a record that shows a contract (``handling.consent_evidence``), and provision abroad the
        subject's own consent to it (the basis's ``consent_member``) and a country every governing
        version publishes; a stop-of-use request
        stops every basis but a legal obligation; joint use's stop does not concern these channels.
        Sensitive data goes only on a basis that may carry it and for purposes the guideline allows."""
        admitted = self._admit(record, source, now=now, policy=policy, trusted=trusted)
        if isinstance(admitted, Decision):
            return admitted
        key, dropped, versions = admitted
        version = versions.label

        def withheld(reason: Reason, detail: str) -> Decision:
            return Decision(Status.WITHHELD, reason, detail, key=key, dropped=dropped, policy_version=version)

        now_handling, then_handling = versions.now.handling, versions.record.handling
        if now_handling is None or then_handling is None:
            return withheld(Reason.NO_CHANNEL, "no version that governs the record has channels of provision")
        if source != now_handling.provider or source != then_handling.provider:
            return withheld(Reason.NOT_PROVIDER, "only the provider's own customers' records are provided")
        now_channel = versions.now.channels_by_id.get(channel)
        then_channel = versions.record.channels_by_id.get(channel)
        if now_channel is None or then_channel is None or now_channel.basis is not then_channel.basis:
            return withheld(Reason.NO_CHANNEL, "the channel is not in every version that governs the record")
        basis = BASES[now_channel.basis]
        if stopped and basis.id is not LegalBasis.LEGAL_OBLIGATION:
            return withheld(Reason.STOP_OF_USE, "a stop-of-use request covers the subject")
        if basis.consent_required and any(
            record.get(h.consent_evidence) is None for h in (now_handling, then_handling)
        ):
            return withheld(Reason.NO_CONSENT, "the basis needs consent and the record holds no contract")
        member = basis.consent_member
        if member is not None and (record.get("consent") or {}).get(member) is not True:
            return withheld(Reason.NO_CONSENT, f"the basis needs the subject's own consent (consent.{member})")
        if now_channel.country is not None and not all(
            now_channel.country == then_channel.country and now_channel.country in v.foreign_provision.allowed_countries
            for v in (versions.now, versions.record)
        ):
            # Checked here as well as when the policy loads: a decision must not rely on its caller.
            return withheld(Reason.NO_CHANNEL, "the recipient's country is not allowed by every governing version")
        opted_out = bool((record.get("consent") or {}).get("marketing_opt_out"))
        route = self._channel_route(versions, now_channel.id, opted_out, trusted)
        if route is None:
            return withheld(Reason.NO_RECIPIENT, "the channel may receive nothing of the record")
        delivery = Delivery(
            route.recipient, route.purposes, route.items, route.project(record), route.fields, basis.id.value
        )
        provided = frozenset(route.fields)
        return Decision(
            Status.SHARED,
            Reason.SHARED,
            key=key,
            purposes=route.purposes,
            deliveries={route.recipient: delivery},
            dropped=tuple(d for d in dropped if d.path not in provided),
            policy_version=version,
            record_policy_version=versions.record.version,
        )

    def _admit(
        self, record: Any, source: str, *, now: dt.datetime, policy: Policy | None, trusted: bool
    ) -> Decision | tuple[str | None, tuple[DroppedField, ...], _Versions]:
        """What every recipient's decision starts with: a valid record of ``source`` and the versions
        that govern it; else the decision (invalid, or no version in force)."""
        if type(record) is not dict:
            return Decision(Status.INVALID, Reason.NOT_AN_OBJECT, "the record is not a JSON object / Avro record")
        problem = (self._decoded_check if trusted else self._check)(record, "")
        key = record.get("customer_id") if type(record.get("customer_id")) is str else None
        if problem is not None:
            return Decision(Status.INVALID, Reason.SCHEMA_VIOLATION, str(problem), key=key)
        found: list[DroppedField] = []
        scan = self._scan_trusted if trusted else self._scan
        if scan is not None:
            scan(record, found)
        dropped = tuple(found)
        if record.get("source_company") != source:
            return Decision(
                Status.INVALID,
                Reason.SOURCE_MISMATCH,
                "source_company differs from the producing company",
                key=key,
                dropped=dropped,
            )
        at = self.record_time(record)
        if at is not None and at > now + self.max_clock_skew:
            return Decision(
                Status.INVALID,
                Reason.FUTURE_TIMESTAMP,
                "updated_at is later than the pipeline's clock allows",
                key=key,
                dropped=dropped,
            )
        versions = self._versions(now, at, policy)
        if versions is None:
            return Decision(
                Status.WITHHELD,
                Reason.NO_POLICY_IN_FORCE,
                "no notice version was in force at the record's time",
                key=key,
                dropped=dropped,
            )
        return key, dropped, versions

    def _channel_route(self, versions: _Versions, channel: str, opted_out: bool, trusted: bool) -> _Route | None:
        """What ``channel`` receives under both versions (their intersection), or None: nothing."""
        cache_key = (versions.now.version, versions.record.version, f"channel:{channel}", opted_out, trusted)
        cached = self._routes.get(cache_key)
        if cached is not None:
            return cached[0] if cached else None
        route = self._build_channel_route(versions, channel, opted_out, trusted)
        self._routes[cache_key] = (route,) if route is not None else ()
        return route

    def _build_channel_route(self, versions: _Versions, channel: str, opted_out: bool, trusted: bool) -> _Route | None:
        now, then = versions.now, versions.record
        assert now.handling is not None and then.handling is not None  # checked by ``provide``
        mine, theirs = now.channels_by_id[channel], then.channels_by_id[channel]
        basis = BASES[mine.basis]
        marketing = frozenset(p.id for h in (now.handling, then.handling) for p in h.purposes if p.marketing)
        in_both = {p.id for p in then.handling.purposes}
        purposes = tuple(
            p.id
            for p in now.handling.purposes
            if p.id in mine.purposes
            and p.id in theirs.purposes
            and p.id in in_both
            and not (opted_out and p.id in marketing)
        )
        if not purposes:
            return None
        items = (
            frozenset(mine.items) & frozenset(theirs.items) & self.schema.items_used() & now.item_ids & then.item_ids
        )
        classes = basis.classes
        insurer = (
            frozenset(mine.insurer_fields) & frozenset(theirs.insurer_fields)
            if FieldClass.INSURER_ONLY in classes
            else frozenset()
        )
        sensitive_ok = basis.may_carry_sensitive and all(
            p in now.handling.sensitive_purposes and p in then.handling.sensitive_purposes for p in purposes
        )
        sensitive = (
            frozenset(mine.sensitive_fields) & frozenset(theirs.sensitive_fields) if sensitive_ok else frozenset()
        )
        kept_paths: list[str] = []

        def keep(node: FieldNode) -> bool:
            if node.cls is FieldClass.IDENTIFIER:
                kept = True
            elif node.cls is FieldClass.ITEM:
                kept = node.item in items
            elif node.cls is FieldClass.INSURER_ONLY:
                kept = any(node.path == f or node.path.startswith((f"{f}.", f"{f}[", f"{f}{{")) for f in insurer)
            elif node.cls is FieldClass.SENSITIVE:
                kept = node.path in sensitive
            else:
                kept = False  # secrecy of communications, consent, metadata: never
            if kept and node.cls in (FieldClass.INSURER_ONLY, FieldClass.SENSITIVE):
                kept_paths.append(node.path)
            return kept

        project = record_projector(self.schema.fields, keep, trusted=trusted)
        if not items and not kept_paths:
            return None
        return _Route(
            channel,
            purposes,
            tuple(sorted(items)),
            project,
            tuple(sorted(set(kept_paths))),
        )

    def _versions(self, now: dt.datetime, at: dt.datetime | None, forced: Policy | None) -> _Versions | None:
        if forced is not None:
            return _Versions(forced, forced)
        in_force_now = self.policies.in_force(now)
        in_force_then = self.policies.in_force(at) if at is not None else in_force_now
        if in_force_now is None or in_force_then is None:
            return None
        return _Versions(in_force_now, in_force_then)

    def routes(
        self, now_policy: Policy, record_policy: Policy, source: str, *, opted_out: bool
    ) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
        """(recipient, purposes, items) for records of ``source`` under two versions; builds (and
        caches) the projections of both modes, so a check finds any that cannot be built."""
        versions = _Versions(now_policy, record_policy)
        self._routes_for(versions, source, opted_out, False)
        return [(r.recipient, r.purposes, r.items) for r in self._routes_for(versions, source, opted_out, True)]

    def _routes_for(self, versions: _Versions, source: str, opted_out: bool, trusted: bool) -> tuple[_Route, ...]:
        cache_key = (versions.now.version, versions.record.version, source, opted_out, trusted)
        cached = self._routes.get(cache_key)
        if cached is not None:
            return cached
        now, then = versions.now, versions.record
        allowed = frozenset(_allowed_purposes(versions, opted_out))
        ordinal = {p: i for i, p in enumerate(now.purpose_ids)}
        schema_items = self.schema.items_used() & now.item_ids & then.item_ids
        routes = []
        for user in now.joint_users:
            if user.id == source or user.id not in then.users_by_id:
                continue
            usable = now.declared_purposes(user.id) & then.declared_purposes(user.id) & allowed
            serving = {i: now.purposes_of_item[i] & then.purposes_of_item[i] & usable for i in schema_items}
            items = frozenset(i for i, served in serving.items() if served)
            if not items:
                continue
            served_all = frozenset().union(*(serving[i] for i in items))
            routes.append(
                _Route(
                    user.id,
                    tuple(sorted(served_all, key=ordinal.__getitem__)),
                    tuple(sorted(items)),
                    self._projector(items, trusted),
                )
            )
        result = tuple(routes)
        self._routes[cache_key] = result
        return result

    def _purposes_for(self, versions: _Versions, opted_out: bool) -> tuple[str, ...]:
        """``_allowed_purposes``, worked out once per pair of versions (like the routes)."""
        cache_key = (versions.now.version, versions.record.version, opted_out)
        purposes = self._purposes.get(cache_key)
        if purposes is None:
            purposes = self._purposes[cache_key] = _allowed_purposes(versions, opted_out)
        return purposes

    def _projector(self, items: frozenset[str], trusted: bool) -> Project:
        cached = self._projectors.get((items, trusted))
        if cached is None:

            def keep(node: FieldNode) -> bool:
                return node.cls is FieldClass.IDENTIFIER or (node.cls is FieldClass.ITEM and node.item in items)

            cached = record_projector(self.schema.fields, keep, trusted=trusted)
            self._projectors[(items, trusted)] = cached
        return cached


def _allowed_purposes(versions: _Versions, opted_out: bool) -> tuple[str, ...]:
    """Purposes of both versions, in the published order of the version in force now; a marketing
    opt-out removes what either version marks as marketing."""
    marketing = versions.now.marketing_purposes | versions.record.marketing_purposes
    both = frozenset(versions.record.purpose_ids)
    return tuple(p for p in versions.now.purpose_ids if p in both and not (opted_out and p in marketing))


def _is_timestamp(node: TypeNode) -> bool:
    return node.logical == "timestamp-millis" or any(b.logical == "timestamp-millis" for b in node.branches)
