"""The Confluent wire format: magic byte 0, 4-byte big-endian schema id, then the Avro body."""

from __future__ import annotations

import struct

from streams.errors import SerdeError

MAGIC = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """Split a framed value into its schema id and body. Raises ``SerdeError`` with a stable reason."""
    if data is None or len(data) == 0:
        raise SerdeError("the value is empty", reason="empty_value", original=data)
    if len(data) < HEADER_SIZE:
        raise SerdeError("the value is shorter than the wire-format header", reason="truncated_header", original=data)
    if data[0] != MAGIC:
        raise SerdeError(
            "the value does not start with the wire-format magic byte 0", reason="bad_magic_byte", original=data
        )
    _, schema_id = _HEADER.unpack_from(data)
    return schema_id, memoryview(data)[HEADER_SIZE:]
