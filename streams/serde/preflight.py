"""What `jointuse policy check` and `schemas check` build before any worker does: everything a
worker builds at run time, for every governed version under every pair of policy versions, so that
what would fail in a worker fails in the check, by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.errors import SchemaError
from streams.policy.classification import TypeNode
from streams.policy.engine import Engine
from streams.policy.loader import PolicySet
from streams.serde.governed import GovernedSchemas


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
    return problems


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
