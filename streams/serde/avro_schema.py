"""What is done to an Avro schema itself, without a codec: the annotations a codec ignores taken out,
and the form two schemas are compared by. Free of cavro, so the Quix peer (bench/peer_quix.py), whose
environment has only fastavro, shares it with the worker's codec."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastavro.schema import to_parsing_canonical_form

from streams.errors import SchemaError


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType`` annotations (the binary encoding is the same)."""
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, Mapping):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def parsing_canonical_form(schema: Mapping[str, Any]) -> str:
    """Avro's Parsing Canonical Form: equal forms read the same bytes the same way."""
    try:
        return str(to_parsing_canonical_form(copy.deepcopy(dict(schema))))
    except Exception as exc:  # fastavro raises several unrelated types for a bad schema
        raise SchemaError(f"invalid Avro schema ({exc.__class__.__name__})") from exc
