"""``jointuse filter``: the policy engine offline, JSON Lines in, one decision per line out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from streams.policy.decision import Decision, Status
from streams.policy.engine import Engine
from streams.serde.json_form import JsonForm, JsonFormError
from streams.serde.jsonl import parse_line


def _invalid(line_no: int, rule: str, detail: str) -> dict[str, Any]:
    return {
        "line": line_no,
        "key": None,
        "status": Status.INVALID.value,
        "reason": f"{rule}: {detail}",
        "purposes": [],
        "deliveries": {},
        "dropped": [],
        "policy_version": None,
    }


def decision_json(line_no: int, decision: Decision, form: JsonForm) -> dict[str, Any]:
    return {
        "line": line_no,
        "key": decision.key,
        "status": decision.status.value,
        "reason": decision.message,
        "purposes": list(decision.purposes),
        "deliveries": {
            recipient: {"purposes": list(d.purposes), "items": list(d.items), "record": form.to_json(dict(d.record))}
            for recipient, d in decision.deliveries.items()
        },
        "dropped": [{"path": f.path, "class": f.cls} for f in decision.dropped],
        "policy_version": decision.policy_version,
    }


def filter_lines(
    lines: Iterable[bytes], *, source: str, engine: Engine, form: JsonForm, now: dt.datetime
) -> Iterator[dict[str, Any]]:
    """One output object per input line, in order, whatever the line holds: bad input becomes an
    ``invalid`` line, and so does any failure deciding it (``unprocessable``, with the error's class)."""
    for line_no, raw in enumerate(lines, start=1):
        try:
            yield _decide_line(line_no, raw, source=source, engine=engine, form=form, now=now)
        except Exception as exc:  # one line must never stop the others
            yield _invalid(line_no, "unprocessable", exc.__class__.__name__)


def _decide_line(
    line_no: int, raw: bytes, *, source: str, engine: Engine, form: JsonForm, now: dt.datetime
) -> dict[str, Any]:
    value, problem = parse_line(raw)
    if problem is not None:
        return _invalid(line_no, *problem)
    if type(value) is not dict:
        return _invalid(line_no, "not_an_object", "the line is not a JSON object")
    try:
        native = form.to_native(value)
    except JsonFormError as exc:
        key = value.get("customer_id") if type(value.get("customer_id")) is str else None
        return {**_invalid(line_no, "schema_violation", str(exc.violation)), "key": key}
    return decision_json(line_no, engine.decide(native, source, now=now), form)
