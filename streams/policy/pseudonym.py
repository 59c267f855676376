"""The pseudonym of a data subject in audit events: HMAC-SHA256 under a deployment secret.

An unkeyed hash of ``source`` and ``customer_id`` can be reversed by anyone who reads the audit topic:
customer ids are easy to enumerate. Under a key, only the holders of the key can link an event to a
customer. Every event names the key by its id (a keyed digest of a constant, never the key), so
events made before a rotation can still be found: lookups try the current key and every earlier one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

MIN_KEY_BYTES = 16
_KEY_ID_MESSAGE = b"jointuse subject key id"


class SubjectKeyError(ValueError):
    """The key material is unusable; the message never holds key material."""


@dataclass(frozen=True, repr=False)
class SubjectKeys:
    """The current key, which makes new pseudonyms, and earlier ones, used only to look subjects up."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def __repr__(self) -> str:  # never the key material: only which key it is
        return f"SubjectKeys(key_id={self.key_id!r}, previous={len(self.previous)})"

    def __post_init__(self) -> None:
        for key in (self.current, *self.previous):
            if len(key) < MIN_KEY_BYTES:
                raise SubjectKeyError(f"a subject key must be at least {MIN_KEY_BYTES} bytes")

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> SubjectKeys:
        """Keys one per line, the current one first; blank lines and ``#`` comments are skipped."""
        keys = [line.strip().encode() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not keys:
            raise SubjectKeyError("no subject key given")
        return cls(keys[0], tuple(keys[1:]))

    @cached_property
    def key_id(self) -> str:
        return _key_id(self.current)

    @cached_property
    def _keyed_macs(self) -> tuple[hmac.HMAC, ...]:
        """HMAC-SHA256 keyed with each key (the current one first), copied for each subject. The
        one-shot ``hmac.digest`` lets go of the GIL on every call, and a thread busy beside it (a
        worker's event loop) then keeps it for up to a switch interval, some two hundred times
        slower per pseudonym; a copy of a keyed MAC holds on to it (docs/benchmarks.md, Findings)."""
        return tuple(hmac.new(key, digestmod=hashlib.sha256) for key in (self.current, *self.previous))

    def subject(self, source: str, customer_id: str) -> str:
        """The pseudonym under the current key (the hot path: once per input)."""
        return _pseudonym(self._keyed_macs[0], _message(source, customer_id))

    def lookup_subjects(self, source: str, customer_id: str) -> frozenset[str]:
        """The pseudonyms of one subject under every key, for finding events made before a rotation."""
        message = _message(source, customer_id)
        return frozenset(_pseudonym(keyed, message) for keyed in self._keyed_macs)


def _message(source: str, customer_id: str) -> bytes:
    return f"{source}\x00{customer_id}".encode("utf-8", "surrogatepass")


def _pseudonym(keyed: hmac.HMAC, message: bytes) -> str:
    mac = keyed.copy()
    mac.update(message)
    return mac.hexdigest()[:32]


def _key_id(key: bytes) -> str:
    return hmac.new(key, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:12]


def subject_key(source: str, customer_id: str) -> str:
    """The key of a subject's deliveries, rights requests and erasure notices."""
    return f"{source}:{customer_id}"
