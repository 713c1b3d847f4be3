"""Many live pages in one process: websocket clients that record when each event row arrives.

    python -m bench.live_fanout.clients --url ws://127.0.0.1:PORT --cookie sessionid=...
        --topics events --first 0 --count 500 --out receipts.json

Clients `first` .. `first + count - 1` (client i takes topic i mod n). Prints "ready N" once
every client is connected and subscribed, then records (client, arrival time, event ids) of
every pushed message until SIGTERM. Then it reads --commits (written by the publisher by
then) and writes to --out what it saw: a histogram of commit-to-first-receipt latency over
every (client, event) pair, how many pairs it saw, and how many messages. No Django.

The clients are plain asyncio protocols speaking just enough RFC 6455 (the handshake, the
server's unmasked frames, masked pongs to uvicorn's keepalive pings): a page costs this
process a few microseconds per message, so several such processes can stand in for 2,000
pages on the same two cores as the server they measure (the `websockets` library costs
~10 times more per message and would measure itself).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import gc
import json
import os
import re
import signal
import struct
import sys
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

EVENT_ID = re.compile(rb'id="event-(\d+)"')
CONNECT_AT_ONCE = 50
# Latency histogram: 0.1 ms buckets up to 60 s (p99 within 0.1 ms).
BUCKET_MS = 0.1
BUCKETS = 600_000


class Page(asyncio.Protocol):
    """One live page: a websocket that records the event ids of every message."""

    def __init__(self, index: int, request: bytes, log: Receipts) -> None:
        self.index = index
        self.request = request
        self.log = log
        self.buffer = b""
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"client {self.index} lost: {exc!r}"))
        self.log.closed += 1

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buffer[:200].decode(errors="replace")))
                return
            self.upgraded = True
            self.ready.set_result(None)
            buffer = buffer[end + 4 :]
        at = 0
        size = len(buffer)
        while size - at >= 2:
            opcode, length = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
            head = 2
            if length == 126:
                if size - at < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, at + 2)
                head = 4
            elif length == 127:
                if size - at < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, at + 2)
                head = 10
            if size - at < head + length:
                break
            payload = buffer[at + head : at + head + length]
            at += head + length
            if opcode == 0x1 or opcode == 0x2:
                self.log.record(self.index, now, payload)
            elif opcode == 0x9:  # ping: answer with a masked pong carrying the same payload
                self._send(0xA, payload)
            elif opcode == 0x8:
                self.log.close_codes.append(struct.unpack("!H", payload[:2])[0] if payload else 0)
        self.buffer = buffer[at:]

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None and len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)


class Receipts:
    """What every page of this process received, compactly (~10^6 ids per process)."""

    def __init__(self) -> None:
        self.clients = array.array("i")  # per message
        self.times = array.array("d")
        self.counts = array.array("i")
        self.ids = array.array("q")  # every event id of every message, in order
        self.closed = 0
        self.close_codes: list[int] = []

    def record(self, index: int, now: float, payload: bytes) -> None:
        found = EVENT_ID.findall(payload)
        self.clients.append(index)
        self.times.append(now)
        self.counts.append(len(found))
        self.ids.extend(map(int, found))

    def summary(self, commits: dict[int, float]) -> dict[str, object]:
        """Latency histogram of first receipts of committed events, per (client, event)."""
        if not commits:
            return {"histogram": {}, "pairs": 0, "messages": len(self.times)}
        low, high = min(commits), max(commits)
        committed = [commits.get(event_id) for event_id in range(low, high + 1)]
        seen: dict[int, bytearray] = {}
        histogram = [0] * BUCKETS
        pairs = 0
        offset = 0
        for client, at, count in zip(self.clients, self.times, self.counts, strict=True):
            mine = seen.get(client)
            if mine is None:
                mine = seen[client] = bytearray(high - low + 1)
            for event_id in self.ids[offset : offset + count]:
                slot = event_id - low
                if slot < 0 or slot > high - low or mine[slot]:
                    continue
                commit = committed[slot]
                if commit is None:
                    continue
                mine[slot] = 1
                pairs += 1
                bucket = int((at - commit) * 1000 / BUCKET_MS)
                histogram[min(max(bucket, 0), BUCKETS - 1)] += 1
            offset += count
        return {
            "histogram": {str(b): n for b, n in enumerate(histogram) if n},
            "pairs": pairs,
            "messages": len(self.times),
        }


async def run(args: argparse.Namespace) -> int:
    topics = args.topics.split(";")
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    log = Receipts()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    loop = asyncio.get_running_loop()

    def request(index: int) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /ws/live/?topics={topics[index % len(topics)]} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{host}:{port}\r\nCookie: {args.cookie}\r\n\r\n"
        ).encode()

    async def open_one(index: int) -> Page:
        async with gate:
            _, page = await loop.create_connection(
                lambda: Page(index, request(index), log), host, port
            )
            await asyncio.wait_for(page.ready, 30)
            return page

    pages = await asyncio.gather(*(open_one(i) for i in range(args.first, args.first + args.count)))
    # The receipts grow to ~10^6 entries: with the cyclic collector on, each full collection
    # would stall every client at once and be counted as the server's latency.
    gc.freeze()
    gc.disable()
    # The server subscribes a page before accepting it: once open, nothing is missed.
    print(f"ready {len(pages)}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    closed_during_run = log.closed
    for page in pages:
        if page.transport is not None:
            page.transport.abort()
    published = json.loads(Path(args.commits).read_text()) if Path(args.commits).exists() else {}
    commits = {int(k): t for k, t in published.get("commits", [])}
    result = log.summary(commits)
    result["close_codes"] = log.close_codes
    result["closed_during_run"] = closed_during_run
    Path(args.out).write_text(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--cookie", required=True)
    parser.add_argument(
        "--topics", required=True, help="';'-separated: client i takes topic i mod n"
    )
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--commits", required=True, help="the publisher's output")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a requirement
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
