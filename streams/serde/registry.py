"""Schema registry access through confluent-kafka's client, with schemas cached by id."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.errors import RegistryError, SchemaError, SerdeError
from streams.serde.avro_codec import AvroCodec


class Registry:
    """Registers and looks up Avro schemas; keeps one codec per schema id (ids are immutable)."""

    def __init__(self, conf: Mapping[str, Any]) -> None:
        url = str(conf.get("url", ""))
        try:
            self.client = (
                SchemaRegistryClient.new_client(dict(conf))
                if url.startswith("mock://")
                else SchemaRegistryClient(dict(conf))
            )
        except Exception as exc:
            raise RegistryError(f"cannot configure the schema registry client ({exc.__class__.__name__})") from exc
        self._codecs: dict[int, AvroCodec] = {}
        self._schemas: dict[int, dict[str, Any]] = {}
        self.lookups = 0
        self.cache_hits = 0

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """Registers ``schema`` under ``subject`` (idempotent); returns its id."""
        try:
            schema_id = int(self.client.register_schema(subject, Schema(json.dumps(schema), "AVRO")))
        except SchemaRegistryError as exc:
            raise RegistryError(f"the registry refused the schema for {subject} ({exc.error_message})") from exc
        except Exception as exc:
            raise RegistryError(f"cannot reach the schema registry ({exc.__class__.__name__})") from exc
        self._codecs.setdefault(schema_id, AvroCodec(schema))
        return schema_id

    def set_compatibility(self, subject: str, level: str) -> None:
        try:
            self.client.set_compatibility(subject_name=subject, level=level)
        except SchemaRegistryError as exc:
            raise RegistryError(f"the registry refused the compatibility of {subject} ({exc.error_message})") from exc
        except Exception as exc:
            raise RegistryError(f"cannot reach the schema registry ({exc.__class__.__name__})") from exc

    def codec(self, schema_id: int) -> AvroCodec:
        """The codec of a schema id (for reading what the pipeline itself wrote, e.g. deliveries);
        raises ``SerdeError(reason="unknown_schema_id")`` if the registry has none."""
        codec = self._codecs.get(schema_id)
        if codec is not None:
            self.cache_hits += 1
            return codec
        try:
            codec = AvroCodec(self.schema(schema_id))
        except SchemaError as exc:
            raise SerdeError("the schema id names an invalid Avro schema", reason="not_avro") from exc
        self._codecs[schema_id] = codec
        return codec

    def schema(self, schema_id: int) -> Mapping[str, Any]:
        """The schema of an id (ids are immutable, so it is kept). ``SerdeError`` for an id the
        registry does not have or a schema that is not Avro; ``RegistryError`` when it cannot answer."""
        known = self._schemas.get(schema_id)
        if known is not None:
            self.cache_hits += 1
            return known
        self.lookups += 1
        try:
            schema = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SerdeError("the schema id is not in the registry", reason="unknown_schema_id") from exc
            raise RegistryError(f"schema lookup failed ({exc.error_message})") from exc
        except Exception as exc:
            raise RegistryError(f"cannot reach the schema registry ({exc.__class__.__name__})") from exc
        if schema.schema_type not in (None, "AVRO"):
            raise SerdeError("the schema id names a non-Avro schema", reason="not_avro")
        try:
            parsed = json.loads(schema.schema_str or "null")
        except ValueError as exc:
            raise SerdeError("the schema id names a schema that is not JSON", reason="not_avro") from exc
        if not isinstance(parsed, dict):
            raise SerdeError("the schema id names a schema that is not a record", reason="not_avro")
        self._schemas[schema_id] = parsed
        return parsed
