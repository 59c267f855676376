"""The worker's HTTP endpoints: ``/metrics``, ``/healthz`` (alive), ``/readyz`` (ready to work) and,
for a worker that describes itself, ``/status`` (what it is doing and waiting for, as JSON).

A small threaded server of the standard library, so that it answers even while the worker's own
loop is busy. It binds 127.0.0.1 by default; port 0 picks a free port (several workers on one host).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Readiness = Callable[[], dict[str, bool]]
Status = Callable[[], dict[str, Any]]


class HealthServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        status: Status | None = None,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b'{"status":"alive"}\n', "application/json")
                elif path == "/readyz":
                    checks = outer.readiness()
                    ready = all(checks.values())
                    body = json.dumps({"ready": ready, "checks": checks}).encode() + b"\n"
                    self._send(200 if ready else 503, body, "application/json")
                elif path == "/status" and outer.status is not None:
                    self._send(200, json.dumps(outer.status()).encode() + b"\n", "application/json")
                else:
                    self._send(404, b'{"error":"not found"}\n', "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the prober gave up waiting: nothing to tell it

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the worker's log

        self.registry = registry
        self.readiness = readiness
        self.status = status
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() of a server that never served would wait forever
            self.server.shutdown()
        self.server.server_close()
