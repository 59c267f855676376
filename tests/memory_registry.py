"""An in-memory schema registry for broker-free tests of the processors (ids as a registry gives them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streams.errors import RegistryError, SerdeError


class MemoryRegistry:
    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.subjects: dict[str, list[int]] = {}
        self.down = False  # a registry that does not answer

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        if self.down:
            raise RegistryError("cannot reach the schema registry (test)")
        text = json.dumps(schema, sort_keys=True)
        known = {json.dumps(s, sort_keys=True): i for i, s in self.schemas.items()}
        schema_id = known.get(text) or len(self.schemas) + 1
        self.schemas[schema_id] = json.loads(text)
        self.subjects.setdefault(subject, []).append(schema_id)
        return schema_id

    def schema(self, schema_id: int) -> Mapping[str, Any]:
        if self.down:
            raise RegistryError("cannot reach the schema registry (test)")
        if schema_id not in self.schemas:
            raise SerdeError("the schema id is not in the registry", reason="unknown_schema_id")
        return self.schemas[schema_id]
