"""Recorded decisions against new ones: the dry run's differences (pure)."""

from __future__ import annotations

from streams.audit.core.event import AuditEvent
from streams.policy.decision import Decision, Delivery, Reason, Status
from streams.replay.compare import SAMPLES, Change, DryRunReport, changes


def _event(status: str, recipients: dict[str, tuple[list[str], list[str]]]) -> AuditEvent:
    return AuditEvent.from_json(
        {"status": status, "recipients": {r: {"purposes": p, "items": i} for r, (p, i) in recipients.items()}}
    )


def _decision(recipients: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> Decision:
    deliveries = {r: Delivery(r, p, i, {}) for r, (p, i) in recipients.items()}
    status = Status.SHARED if deliveries else Status.WITHHELD
    return Decision(status, Reason.SHARED if deliveries else Reason.NO_RECIPIENT, deliveries=deliveries)


def test_no_change() -> None:
    event = _event("shared", {"b": (["p1"], ["name"])})
    assert changes(event, _decision({"b": (("p1",), ("name",))})) == []


def test_items_purposes_recipients_and_status() -> None:
    event = _event("shared", {"b": (["p1", "p2"], ["name", "email"]), "c": (["p1"], ["name"])})
    new = _decision({"b": (("p1", "p3"), ("name",)), "d": (("p1",), ("name",))})
    assert changes(event, new) == [
        Change("purpose", "b", "p2", "removed"),
        Change("purpose", "b", "p3", "added"),
        Change("item", "b", "email", "removed"),
        Change("recipient", "c", "", "removed"),
        Change("recipient", "d", "", "added"),
    ]
    assert changes(event, _decision({})) == [
        Change("status", "", "shared -> withheld", "changed"),
        Change("recipient", "b", "", "removed"),
        Change("recipient", "c", "", "removed"),
    ]
    assert changes(_event("invalid", {}), None) == []  # still a dead letter
    assert changes(event, None)[0] == Change("status", "", "shared -> invalid", "changed")


def test_report_counts_and_keeps_a_few_sample_keys() -> None:
    report = DryRunReport()
    removed = Change("item", "b", "email", "removed")
    for index in range(10):
        report.add(f"k{index}", [removed] if index % 2 else [])
    assert (report.compared, report.unchanged, report.changed) == (10, 5, 5)
    assert report.rows() == [
        {
            "kind": "item",
            "recipient": "b",
            "what": "email",
            "direction": "removed",
            "records": 5,
            "sample_keys": ["k1", "k3", "k5"][:SAMPLES],
        }
    ]
