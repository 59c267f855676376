"""``jointuse filter``: the policy engine offline, JSON Lines in, one decision per line out."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from streams.policy.decision import Decision, Status
from streams.policy.engine import Engine
from streams.serde.json_form import JsonForm, JsonFormError


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


def parse_line(raw: bytes) -> tuple[Any, tuple[str, str] | None]:
    """The JSON value of one input line, or a (rule, detail) pair saying why there is none."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, ("not_utf8", "the line is not valid UTF-8")
    text = text.strip()
    if not text:
        return None, ("empty_line", "the line is empty")
    try:
        return json.loads(text), None
    except RecursionError:
        return None, ("nested_too_deep", "the line nests deeper than the parser allows")
    except ValueError:
        return None, ("not_json", "the line is not valid JSON")


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
    """One output object per input line, in order; bad input becomes an ``invalid`` line, never an error."""
    for line_no, raw in enumerate(lines, start=1):
        value, problem = parse_line(raw)
        if problem is not None:
            yield _invalid(line_no, *problem)
            continue
        if type(value) is not dict:
            yield _invalid(line_no, "not_an_object", "the line is not a JSON object")
            continue
        try:
            native = form.to_native(value)
        except JsonFormError as exc:
            key = value.get("customer_id") if type(value.get("customer_id")) is str else None
            yield {**_invalid(line_no, "schema_violation", str(exc.violation)), "key": key}
            continue
        yield decision_json(line_no, engine.decide(native, source, now=now), form)
