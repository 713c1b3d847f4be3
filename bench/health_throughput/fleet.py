"""Simulated instances for the health benchmark: many listening sockets, one small server.

Each (address, port) is one instance (its own listening socket, as a real fleet has),
answering every HTTP/1.1 request with a small application/health+json document and
keeping the connection alive; every 100th instance answers 503 with a failing component
so failures, reasons and rollups are exercised too. The server is a bare asyncio protocol
(uvloop) writing a pre-built answer per request head, so the fleet's own CPU stays small
beside the probe worker's on a two-core machine; it ignores method and path (the bench
only asks GET /health).

    python -m bench.health_throughput.fleet --endpoints-file endpoints.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import socket
from functools import partial

PASS_BODY = json.dumps(
    {"status": "pass", "checks": {"db:ping": [{"status": "pass", "observedValue": 1}]}}
).encode()
FAIL_BODY = json.dumps(
    {"status": "fail", "checks": {"db:ping": [{"status": "fail", "output": "connection refused"}]}}
).encode()


def answer(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/health+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


PASS = answer("200 OK", PASS_BODY)
FAIL = answer("503 Service Unavailable", FAIL_BODY)


def failing(index: int) -> bool:
    """Every 100th instance of the benchmark's list fails."""
    return index % 100 == 0


class Instance(asyncio.Protocol):
    __slots__ = ("answer", "buffer", "transport")

    def __init__(self, reply: bytes) -> None:
        self.answer = reply
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            self.transport.write(self.answer)  # type: ignore[union-attr]
            buffer = buffer[end + 4 :]
        self.buffer = buffer


async def serve(endpoints: list[tuple[str, int, int]]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for host, port, index in endpoints:
        reply = FAIL if failing(index) else PASS
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        servers.append(await loop.create_server(partial(Instance, reply), sock=sock, backlog=128))
    print(f"fleet: {len(endpoints)} instances listening ({endpoints[0][0]}:{endpoints[0][1]}...)")
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints-file", required=True, help="JSON [[host, port, index]...]")
    args = parser.parse_args()
    with open(args.endpoints_file) as f:
        endpoints = [(str(h), int(p), int(i)) for h, p, i in json.load(f)]
    # A listening socket and up to two kept-alive connections (one per worker child) per
    # instance; the bench sizes each process to fit the hard limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(serve(endpoints))


if __name__ == "__main__":
    main()
