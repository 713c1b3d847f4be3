"""What every outbound path's guard test aims at: the forbidden targets and a redirector.

Imported by each app's guard tests (health probes, circuit scrapes, notifiers, analysis
providers), so every path is held to the same four cases the Architecture issue names.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

METADATA = "169.254.169.254"
METADATA_MAPPED = "::ffff:169.254.169.254"
METADATA_URL = f"http://{METADATA}/latest/meta-data/iam/security-credentials/"
# A name this machine resolves to loopback (/etc/hosts), refused once loopback is not allowed.
LOOPBACK_NAME = "localhost"
PRIVATE_ONLY = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]


def refuse_loopback(settings: Any) -> None:
    """Allow private networks only: what production does by default."""
    settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS = PRIVATE_ONLY


@dataclass
class Redirector:
    """A loopback HTTP server answering every request with a redirect to the metadata URL."""

    port: int
    paths: list[str] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def redirector(location: str = METADATA_URL) -> Iterator[Redirector]:
    """Redirects every request to `location`; with an empty `location` it answers 200."""
    body = b"" if location else b'{"status": "success", "data": {"result": []}}'
    with answering(302 if location else 200, body, location) as found:
        yield found


@contextmanager
def answering(status: int, body: bytes, location: str = "") -> Iterator[Redirector]:
    """A loopback HTTP server answering every request with `status` and `body`."""
    found: Redirector

    class Handler(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            found.paths.append(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_HEAD = _redirect

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found = Redirector(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
