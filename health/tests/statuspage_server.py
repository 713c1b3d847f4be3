"""The demo fleet's status page (`python -m fleet statuspage`) as a real process for tests."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class VendorPage:
    url: str
    process: subprocess.Popen[str]

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = httpx.post(f"{self.url}/control/{path}", json=body or {}, timeout=5)
        reply.raise_for_status()
        return reply.json()

    def set_component(self, name: str, status: str) -> None:
        self.control(f"components/{name}", {"status": status})


@contextmanager
def running_statuspage(
    name: str = "Stripe", components: str = "API,Checkout,Dashboard"
) -> Iterator[VendorPage]:
    process = subprocess.Popen(
        [sys.executable, "-m", "fleet", "statuspage", "--port", "0", "--name", name,
         "--components", components],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                yield VendorPage(found.group(1), process)
                return
            if process.poll() is not None:
                break
        raise RuntimeError(f"fleet statuspage did not start: {line!r}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (a port just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
