"""The schemas this repository governs, and how a producer's writer schema is read into one of them.

A producer controls the schema id its message names, and through the registry the schema behind it,
labels included. The pipeline therefore never classifies a writer schema: it reads every record
into a governed version (a schema file in ``schemas/``, classified by the operator) and decides with
that version's classes.
- Fast path: the writer's Parsing Canonical Form equals a governed version's (labels, docs and
  defaults are not part of it). The bytes are decoded with the governed schema directly.
- Otherwise the writer is resolved into the newest governed version it is compatible with, by Avro
  schema resolution (fields matched by the governed names; anything else the writer holds is skipped).
- A writer that resolves into no governed version is ``ungoverned_schema``: a counted dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from streams.errors import SchemaError, SerdeError
from streams.policy.classification import ClassifiedSchema, classify, delivery_schema
from streams.serde.avro_codec import AvroCodec
from streams.serde.avro_schema import parsing_canonical_form
from streams.serde.compatibility import VERSIONED_SCHEMA
from streams.serde.wire import unframe

RECORD_SCHEMA = "customer_record"


class SchemaSource(Protocol):
    """What reading needs from a schema registry (``streams.serde.registry.Registry`` fits)."""

    def schema(self, schema_id: int) -> Mapping[str, Any]: ...  # pragma: no cover
    def register(self, subject: str, schema: Mapping[str, Any]) -> int: ...  # pragma: no cover


@dataclass
class GovernedVersion:
    """One governed schema version with everything built from it once."""

    name: str  # e.g. customer_record.v2
    classified: ClassifiedSchema
    canonical: str
    codec: AvroCodec  # decodes bodies written with exactly this schema
    delivery_raw: dict[str, Any]
    delivery_codec: AvroCodec
    delivery_ids: dict[str, int] = field(default_factory=dict)  # registered per delivery topic
    path: Path | None = None  # the file it was read from (a child process reads it again)

    @property
    def number(self) -> int:
        match = VERSIONED_SCHEMA.match(f"{self.name}.avsc")
        return int(match["version"]) if match else 0

    @classmethod
    def build(cls, name: str, raw: Mapping[str, Any], path: Path | None = None) -> GovernedVersion:
        classified = classify(raw)
        if classified.problems:
            raise SchemaError(f"{name}: {classified.problems[0]} ({len(classified.problems)} problem(s))")
        delivery = delivery_schema(classified)
        return cls(
            name,
            classified,
            parsing_canonical_form(raw),
            AvroCodec(raw, from_producers=True),
            delivery,
            AvroCodec(delivery),
            path=path,
        )


@dataclass(frozen=True)
class Reading:
    """How the records of one writer schema id are read: into which version, with which codec."""

    version: GovernedVersion
    codec: AvroCodec
    resolved: bool  # False: the fast path (the writer is a governed version)


class GovernedSchemas:
    """Every governed version of the customer record, oldest first."""

    def __init__(self, versions: list[GovernedVersion]) -> None:
        if not versions:
            raise SchemaError("no governed schema version")
        self.versions = tuple(versions)
        self._by_canonical = {v.canonical: v for v in versions}
        self._parsed = {v.name: avro.schema.parse(json.dumps(v.classified.raw)) for v in versions}

    @classmethod
    def load(cls, directory: Path, name: str = RECORD_SCHEMA) -> GovernedSchemas:
        """``<name>.v<N>.avsc`` files of ``directory``, in version order."""
        found = []
        for path in directory.glob(f"{name}.v*.avsc"):
            match = VERSIONED_SCHEMA.match(path.name)
            if match and match["name"] == name:
                found.append((int(match["version"]), path))
        versions = []
        for _, path in sorted(found):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SchemaError(f"{path}: cannot read the schema ({exc.__class__.__name__})") from exc
            versions.append(GovernedVersion.build(path.name.removesuffix(".avsc"), raw, path))
        if not versions:
            raise SchemaError(f"{directory}: no {name}.v<N>.avsc schema")
        return cls(versions)

    @property
    def latest(self) -> GovernedVersion:
        return self.versions[-1]

    def version(self, wanted: str | int | None = None) -> GovernedVersion:
        """A governed version by number (``2``, ``"v2"``) or name (``customer_record.v2``); the
        latest when ``wanted`` is None. ``SchemaError`` names the governed versions otherwise."""
        if wanted is None:
            return self.latest
        text = str(wanted).strip()
        for version in self.versions:
            if text in (version.name, str(version.number), f"v{version.number}"):
                return version
        names = ", ".join(str(v.number) for v in self.versions)
        raise SchemaError(f"schema version: not a governed version (governed: {names})")

    def reading(self, writer: Mapping[str, Any]) -> Reading | None:
        """How to read records of ``writer``, or None when no governed version can read them."""
        try:
            canonical = parsing_canonical_form(writer)
        except SchemaError:
            return None
        same = self._by_canonical.get(canonical)
        if same is not None:
            return Reading(same, same.codec, resolved=False)
        try:
            parsed = avro.schema.parse(json.dumps(writer))
        except (avro.errors.AvroException, ValueError, TypeError):
            return None
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro is unannotated
        for version in reversed(self.versions):
            result = checker.get_compatibility(self._parsed[version.name], parsed)
            if result.compatibility is SchemaCompatibilityType.compatible:
                try:
                    codec = AvroCodec(writer, reader=version.classified.raw, from_producers=True)
                except SchemaError:
                    return None
                return Reading(version, codec, resolved=True)
        return None


class Decoded(NamedTuple):
    schema_id: int
    reading: Reading
    record: Any


class GovernedReader:
    """Reads framed values into governed versions, with one resolution per writer schema id."""

    def __init__(self, governed: GovernedSchemas, registry: SchemaSource) -> None:
        self.governed = governed
        self.registry = registry
        self._readings: dict[int, Reading | None] = {}

    def reading(self, schema_id: int) -> Reading:
        """Raises ``SerdeError``: ``unknown_schema_id``, ``ungoverned_schema``; ``RegistryError`` when
        the registry cannot answer (not the record's fault)."""
        if schema_id in self._readings:
            reading = self._readings[schema_id]
        else:
            reading = self.governed.reading(self.registry.schema(schema_id))
            self._readings[schema_id] = reading  # ids are immutable: a refusal is final too
        if reading is None:
            raise SerdeError("the writer schema resolves into no governed version", reason="ungoverned_schema")
        return reading

    def decode(self, value: bytes | None) -> Decoded:
        schema_id, body = unframe(value)
        reading = self._readings.get(schema_id) or self.reading(schema_id)  # the hot path: one dict lookup
        return Decoded(schema_id, reading, reading.codec.decode(body))

    def delivery_id(self, version: GovernedVersion, topic: str) -> int:
        schema_id = version.delivery_ids.get(topic)
        if schema_id is None:
            schema_id = self.registry.register(f"{topic}-value", version.delivery_raw)
            version.delivery_ids[topic] = schema_id
        return schema_id


def governed_version(directory: Path, wanted: str | int | None = None) -> GovernedVersion:
    """One governed version of the customer record in ``directory`` (the latest by default): what
    every tool writes, reads and checks records with."""
    return GovernedSchemas.load(directory).version(wanted)
