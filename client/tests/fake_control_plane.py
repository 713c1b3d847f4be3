"""A stand-in control plane for the client's own tests: a real HTTP server, no Django.

It answers the endpoints the client uses, with the real API's shapes (202 with counts for
reports, overrides with an ETag and 304, 201/200 for registration), records every request,
and can be told to fail (`reports_status = 503`) or to hang.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeControlPlane:
    overrides: list[dict[str, Any]] = field(default_factory=list)
    reports_status: int = 202
    hang_seconds: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests(self, path: str) -> list[Seen]:
        return [s for s in list(self.seen) if s.path == path]

    def reports(self) -> list[dict[str, Any]]:
        """Every report item the client sent, in order."""
        return [
            item
            for s in self.requests("/api/v1/circuits/reports")
            for item in (s.body or {}).get("reports", [])
        ]

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def etag(self) -> str:
        return '"' + hashlib.sha256(json.dumps(self.overrides).encode()).hexdigest()[:16] + '"'

    def __enter__(self) -> FakeControlPlane:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(
                self, status: int, body: Any = None, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Seen:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers.items()),
                    json.loads(raw) if raw else None,
                )
                plane.seen.append(seen)
                if plane.hang_seconds:
                    time.sleep(plane.hang_seconds)
                return seen

            def do_GET(self) -> None:
                seen = self._record()
                if seen.path == "/api/v1/circuits/overrides":
                    tag = plane.etag()
                    if seen.headers.get("If-None-Match") == tag:
                        self._answer(304, headers={"ETag": tag})
                    else:
                        self._answer(200, {"overrides": plane.overrides}, {"ETag": tag})
                else:
                    self._answer(404, {"error": {"message": "not here"}})

            def do_POST(self) -> None:
                seen = self._record()
                if seen.path == "/api/v1/circuits/reports":
                    count = len((seen.body or {}).get("reports", []))
                    self._answer(plane.reports_status, {"accepted": count})
                elif seen.path == "/api/v1/instances/register":
                    first = len(plane.requests(seen.path)) == 1
                    self._answer(201 if first else 200, {"id": 1, **seen.body})
                elif seen.path == "/api/v1/instances/deregister":
                    self._answer(200, {"id": 1, "lifecycle": "deregistered"})
                else:
                    self._answer(404, {"error": {"message": "not here"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """The URL of a port nothing listens on (connections are refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
