"""Backward compatibility across the versions of a schema, checked with the ``avro`` package (off the
hot path: it is the reference implementation, and about 8x slower than fastavro)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from streams.errors import SchemaError

VERSIONED_SCHEMA = re.compile(r"^(?P<name>.+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class CompatibilityProblem:
    reader: str
    writer: str
    messages: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.reader} cannot read {self.writer}: {'; '.join(self.messages)}"


def schema_versions(directory: Path) -> dict[str, list[Path]]:
    """``<name>.v<N>.avsc`` files grouped by name, ordered by N."""
    if not directory.is_dir():
        raise SchemaError(f"{directory}: not a directory of schemas")
    groups: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.glob("*.avsc"):
        match = VERSIONED_SCHEMA.match(path.name)
        if match:
            groups.setdefault(match["name"], []).append((int(match["version"]), path))
    return {name: [p for _, p in sorted(versions)] for name, versions in sorted(groups.items())}


def _parse(path: Path) -> avro.schema.Schema:
    try:
        return avro.schema.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, avro.errors.SchemaParseException) as exc:
        raise SchemaError(f"{path}: not a valid Avro schema ({exc.__class__.__name__})") from exc


def check_backward(versions: list[Path]) -> list[CompatibilityProblem]:
    """Each version must read data written with every earlier one (BACKWARD_TRANSITIVE)."""
    parsed = [(p, _parse(p)) for p in versions]
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro's __init__ is unannotated
    problems = []
    for index, (reader_path, reader) in enumerate(parsed):
        for writer_path, writer in parsed[:index]:
            result = checker.get_compatibility(reader, writer)
            if result.compatibility is not SchemaCompatibilityType.compatible:
                problems.append(CompatibilityProblem(reader_path.name, writer_path.name, tuple(result.messages)))
    return problems
