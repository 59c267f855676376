"""Lookups in the subject index (``streams.rights.index_app``) over HTTP(S), for the CLI and the eraser.

Any index worker answers: it forwards the lookup to the owner of the subject's partition. A lookup
tells which companies received a person's data: an index worker with a credential configured
refuses one without it, and one over HTTPS is verified against the index's CA.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from streams.errors import SubjectIndexUnavailable
from streams.rights.core.subject_index import SubjectRow
from streams.settings import Settings


@dataclass(frozen=True)
class IndexAnswer:
    """One subject's row (None: nothing was recorded about it) and how far the index was behind
    the audit topic in the subject's partition when it answered (0: it had applied everything)."""

    subject: str
    row: SubjectRow | None
    partition: int
    lag: int


class SubjectIndex:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 40.0,
        token: str | None = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.context = context

    @classmethod
    def of(cls, settings: Settings, *, url: str | None = None) -> SubjectIndex:
        """The index the settings name (or ``url``), with their credential and CA."""
        address = url or settings.index_url
        context = settings.index_client_context() if address.startswith("https:") else None
        return cls(address, token=settings.index_secret(), context=context)

    def _open(self, address: str, timeout: float) -> Any:
        request = urllib.request.Request(address, headers=self.headers)
        return urllib.request.urlopen(request, timeout=timeout, context=self.context)

    def lookup(self, subject: str, *, wait_seconds: float = 0.0) -> IndexAnswer:
        """The subject's row. With ``wait_seconds``, only once the index has applied every event
        committed to the subject's audit partition before the lookup; raises
        ``SubjectIndexUnavailable`` if it has not by then (or does not answer)."""
        query = f"?wait={wait_seconds}" if wait_seconds else ""
        address = f"{self.url}/subjects/{urllib.parse.quote(subject, safe='')}{query}"
        try:
            with self._open(address, self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            reason = _reason(exc)
            raise SubjectIndexUnavailable(f"the subject index at {self.url} answered {exc.code}: {reason}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # The exception's text may quote the address, and with it the subject's pseudonym.
            cause = getattr(exc, "reason", None)
            why = cause.strerror if isinstance(cause, OSError) and cause.strerror else type(exc).__name__
            raise SubjectIndexUnavailable(f"cannot read the subject index at {self.url} ({why})") from exc
        row = body.get("row")
        return IndexAnswer(
            subject=subject,
            row=SubjectRow.from_json(row) if row else None,
            partition=int(body["partition"]),
            lag=int(body["lag"]),
        )

    def status(self) -> dict[str, Any]:
        """The worker's ``/index/status``: per owned partition its lag, end and applied offset, the
        events folded and skipped; {} while it does not answer (starting, restarting)."""
        try:
            with self._open(f"{self.url}/index/status", 5) as response:
                return dict(json.loads(response.read()))
        except (OSError, ValueError):
            return {}


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
    except ValueError:
        return "no reason given"
    lag = f" (lag {body['lag']})" if "lag" in body else ""
    return f"{body.get('error', 'no reason given')}{lag}"
