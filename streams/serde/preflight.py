"""What `jointuse policy check` and `schemas check` build before any worker does: everything a
worker builds at run time, for every governed version under every pair of policy versions, so that
what would fail in a worker fails in the check, by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.errors import SchemaError
from streams.policy.classification import FieldClass, FieldNode, TypeNode
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.policy.model import Policy
from streams.policy.provision import channel_schema
from streams.serde.avro_codec import AvroCodec
from streams.serde.governed import GovernedSchemas, GovernedVersion


def runtime_problems(directory: Path, policies: PolicySet) -> list[str]:
    """Builds what a worker builds at run time, for every governed version under every pair of
    policy versions (in force now, in force at the record's time): classification, delivery schema,
    codecs, routes and projections of both modes; then decides a minimal record from every joint
    user and encodes each delivery. Each problem names the version and the rule, never a value."""
    try:
        governed = GovernedSchemas.load(directory)
    except SchemaError as exc:
        return [str(exc)]
    problems: list[str] = []
    ordered = list(policies.versions)
    for version in governed.versions:
        for policy in ordered:
            problems += [
                f"{version.name}: {v} (policy {policy.version})"
                for v in version.classified.check_against(policy.item_ids)
            ]
        engine = Engine(version.classified, policies)
        sample = minimal_record(version.classified.root)
        for index, now_policy in enumerate(ordered):
            for record_policy in ordered[: index + 1]:
                for user in now_policy.joint_users:
                    where = f"{version.name} under {now_policy.version}/{record_policy.version} from {user.id}"
                    try:
                        for opted_out in (False, True):
                            engine.routes(now_policy, record_policy, user.id, opted_out=opted_out)
                        record = {**sample, "customer_id": "C0", "source_company": user.id}
                        decision = engine.decide(record, user.id, now=now_policy.notice.effective_from, policy=None)
                        if decision.status.value == "invalid":
                            problems.append(f"{where}: a minimal record is invalid ({decision.message})")
                        for delivery in decision.deliveries.values():
                            version.delivery_codec.encode(delivery.record)
                    except Exception as exc:  # what would fail at run time fails here, by name
                        problems.append(f"{where}: {type(exc).__name__}")
        for policy in ordered:
            problems += [f"{version.name}: {p} (policy {policy.version})" for p in channel_problems(version, policy)]
    return problems


def channel_problems(version: GovernedVersion, policy: Policy) -> list[str]:
    """Each channel's named fields against the schema: an insurer-only field must be a top-level
    field of that class, a sensitive one a field of that class at its path (a secrecy-of-
    communications field named as sensitive is refused here, and never provided anyway); and its
    schema must build and encode what the engine would give it."""
    if policy.handling is None:
        return []
    nodes = {node.path: node for node in _every_node(version.classified.fields)}
    problems = []
    for channel in policy.handling.channels:
        for name in channel.insurer_fields:
            node = nodes.get(name)
            if node is None or node.cls is not FieldClass.INSURER_ONLY:
                problems.append(f"channel {channel.id!r}: insurer_fields names {name!r}, not an insurer-only field")
        for path in channel.sensitive_fields:
            node = nodes.get(path)
            if node is None or node.cls is not FieldClass.SENSITIVE:
                problems.append(f"channel {channel.id!r}: sensitive_fields names {path!r}, not a sensitive field")
        try:
            codec = AvroCodec(channel_schema(version.classified, policy, channel.id))
            sample = {**minimal_record(version.classified.root), "customer_id": "C0"}
            sample["source_company"] = policy.handling.provider
            # The fields it is given, and the contract that shows consent, present (not null).
            for name in (*channel.insurer_fields, *channel.sensitive_fields, policy.handling.consent_evidence):
                node = nodes.get(name)
                if node is not None and node.path == node.name:
                    sample[name] = _present(node.type)
            decision = Engine(version.classified, policy).provide(
                sample, policy.handling.provider, channel.id, now=policy.notice.effective_from
            )
            for delivery in decision.deliveries.values():
                codec.encode(delivery.record)
        except Exception as exc:  # what would fail at run time fails here, by name
            problems.append(
                f"channel {channel.id!r}: its delivery schema cannot be built or written ({type(exc).__name__})"
            )
    return problems


def _present(node: TypeNode) -> Any:
    """The smallest value of a type that is not null."""
    branches = [b for b in node.branches if b.kind != "null"]
    if node.kind != "union" or not branches:
        return minimal_record(node)
    value = minimal_record(branches[0])
    return (branches[0].branch_name, value) if node.tagged else value


def _every_node(fields: tuple[FieldNode, ...]) -> Iterator[FieldNode]:
    for node in fields:
        yield node
        yield from _every_node(node.children)


def minimal_record(node: TypeNode) -> Any:
    """The smallest value of a type: null where allowed, else empty or zero."""
    kind = node.kind
    if kind == "record":
        return {f.name: minimal_record(f.type) for f in node.fields}
    if node.nullable:
        return None
    if kind == "union":
        first = node.branches[0]
        value = minimal_record(first)
        return (first.branch_name, value) if node.tagged else value
    return {
        "boolean": False,
        "int": 0,
        "long": 0,
        "float": 0.0,
        "double": 0.0,
        "string": "",
        "bytes": b"",
        "array": [],
        "map": {},
        "enum": min(node.symbols) if node.symbols else "",
        "fixed": b"\0" * node.size,
    }.get(kind)
