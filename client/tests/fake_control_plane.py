"""A stand-in control plane for the client's own tests: a real HTTP server, no Django.

It answers the endpoints the client uses, with the real API's shapes (202 with counts for
reports and metrics, overrides and the lifecycle with an ETag and 304, 201/200 for
registration, the handshake's answers), records every request, and can be told to fail
(`reports_status = 503`, `metrics_status`), to hang, or to listen on a given port (a control
plane coming back where the client expects it).
"""

from __future__ import annotations

import hashlib
import json
import re
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
    metrics_status: int = 202
    port: int = 0
    # What GET /api/v1/instances/1/lifecycle answers (scaling/api/handshake.py's shape).
    lifecycle: dict[str, Any] = field(
        default_factory=lambda: {"instance": 1, "state": "in_service", "protected_until": None}
    )
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def drain(self, state: str = "terminate_when_ready", heartbeat_seconds: int = 60) -> None:
        """Signalbox starts draining instance 1: the next lifecycle poll says so."""
        self.lifecycle = {
            "instance": 1,
            "state": state,
            "since": "2025-01-07T10:15:00+00:00",
            "deadline": "2025-01-07T10:16:00+00:00" if state != "draining" else None,
            "ready_at": None,
            "heartbeat_seconds": heartbeat_seconds,
            "protected_until": None,
        }

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric value the client sent, in order."""
        return [
            value
            for s in self.requests("/api/v1/metrics")
            for value in (s.body or {}).get("metrics", [])
        ]

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

    def etag(self, document: Any = None) -> str:
        document = self.overrides if document is None else document
        return '"' + hashlib.sha256(json.dumps(document).encode()).hexdigest()[:16] + '"'

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
                    self._revalidated(seen, {"overrides": plane.overrides}, plane.etag())
                elif seen.path == "/api/v1/instances/1/lifecycle":
                    self._revalidated(seen, plane.lifecycle, plane.etag(plane.lifecycle))
                else:
                    self._answer(404, {"error": {"message": "not here"}})

            def _revalidated(self, seen: Seen, document: Any, tag: str) -> None:
                if seen.headers.get("If-None-Match") == tag:
                    self._answer(304, headers={"ETag": tag})
                else:
                    self._answer(200, document, {"ETag": tag})

            def do_DELETE(self) -> None:
                seen = self._record()
                if seen.path == "/api/v1/instances/1/protection":
                    plane.lifecycle = {**plane.lifecycle, "protected_until": None}
                    self._answer(200, plane.lifecycle)
                else:
                    self._answer(404, {"error": {"message": "not here"}})

            def _handshake(self, seen: Seen, action: str) -> None:
                leaving = plane.lifecycle["state"] in ("draining", "terminate_when_ready")
                if action == "protection":
                    plane.lifecycle = {
                        **plane.lifecycle,
                        "protected_until": "2025-01-07T12:15:00+00:00",
                    }
                    self._answer(200, plane.lifecycle)
                elif not leaving:
                    self._answer(404, {"error": {"message": "not being terminated"}})
                elif action == "ready-to-terminate":
                    plane.lifecycle = {**plane.lifecycle, "ready_at": "2025-01-07T10:15:30+00:00"}
                    body = {k: v for k, v in plane.lifecycle.items() if k != "protected_until"}
                    self._answer(200, body)
                else:
                    body = {k: v for k, v in plane.lifecycle.items() if k != "protected_until"}
                    self._answer(200, body)

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
                elif seen.path == "/api/v1/metrics":
                    count = len((seen.body or {}).get("metrics", []))
                    self._answer(plane.metrics_status, {"accepted": count})
                elif match := re.fullmatch(r"/api/v1/instances/1/([a-z-]+)", seen.path):
                    self._handshake(seen, match.group(1))
                else:
                    self._answer(404, {"error": {"message": "not here"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """The URL of a port nothing listens on (connections are refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
