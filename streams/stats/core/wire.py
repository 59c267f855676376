"""The wire form of ``<prefix>.stats-contributions.v1``: what the pipeline writes of each shared
record for the statistics worker, and how a batch's contributions travel as one message.

A contribution is a JSON object: the subject's pseudonym, the event time and the record's cells per
table (``streams.stats.core.contributions.Contributor``). The processor makes one per shared record; the
batch loop packs a transaction's contributions into one message, a JSON array of them (``pack``): the
topic has one partition and one reader, and a message per record would be a third of what a
worker writes at two joint users. ``unpack`` reads both forms, and the form whose key, not its
value, holds the subject.

Pure: no client, no clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from streams.messages import OutMessage

# Below the broker's and the clients' default 1 MiB for one message, with room for the batch framing.
MAX_PACKED_BYTES = 512 * 1024
PACKED_KEY = b"contributions"  # one partition: the key only names what the message is


def encode(subject: str, contribution: dict[str, Any]) -> bytes:
    """One contribution as the processor writes it (the subject inside, so that it can be packed)."""
    return orjson.dumps({"subject": subject, **contribution})


def pack(messages: Sequence[OutMessage], topic: str, max_bytes: int = MAX_PACKED_BYTES) -> list[OutMessage]:
    """``messages`` with the contributions to ``topic`` packed into as few messages as fit under
    ``max_bytes`` each (in their order, after the other messages, which keep theirs). A message
    with headers, or without a value, is left as it is."""
    kept: list[OutMessage] = []
    values: list[bytes] = []
    for message in messages:
        if message.topic == topic and message.value is not None and not message.headers:
            values.append(message.value)
        else:
            kept.append(message)
    if not values:
        return kept
    packed: list[bytes] = []
    size = 2
    for value in values:
        if packed and size + len(value) + 1 > max_bytes:
            kept.append(_packed(topic, packed))
            packed, size = [], 2
        packed.append(value)
        size += len(value) + 1
    kept.append(_packed(topic, packed))
    return kept


def _packed(topic: str, values: list[bytes]) -> OutMessage:
    return OutMessage(topic, PACKED_KEY, b"[" + b",".join(values) + b"]", [], partition=0)


def unpack(key: bytes | None, value: bytes | None) -> Iterator[tuple[str, dict[str, Any]] | None]:
    """Each contribution of one message, as (subject, contribution); None for each element that is
    not one (the caller counts it and goes on). A message that is not JSON is one None."""
    try:
        found = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        found = None
    if isinstance(found, list):
        for element in found:
            yield _one(None, element)
    else:
        yield _one(key, found)


def _one(key: bytes | None, found: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(found, dict):
        return None
    subject = found.get("subject")
    if subject is None and key is not None:  # the form whose key holds the subject
        try:
            subject = key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(subject, str) or not subject:
        return None
    return subject, found
