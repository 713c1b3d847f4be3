"""Many live pages in one process: websocket clients that record when each event row arrives.

    python -m bench.live_fanout.clients --url ws://127.0.0.1:PORT --cookie sessionid=...
        --topics events --count 500 --out receipts.json

Prints "ready N" once every client is connected and subscribed, then records (client, event
id, arrival time) for every event row in every pushed message until SIGTERM, and writes
them to --out. No Django.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import signal
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

EVENT_ID = re.compile(rb'id="event-(\d+)"')
CONNECT_AT_ONCE = 50


async def listen(socket: ClientConnection, index: int, seen: list[tuple[int, int, float]]) -> None:
    async for message in socket:
        now = time.time()
        data = message.encode() if isinstance(message, str) else message
        for match in EVENT_ID.finditer(data):
            seen.append((index, int(match.group(1)), now))


async def run(args: argparse.Namespace) -> int:
    topics = args.topics.split(";")
    origin = args.url.replace("ws://", "http://")
    seen: list[tuple[int, int, float]] = []
    sockets: list[ClientConnection] = []
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def open_one(index: int) -> ClientConnection:
        topic = topics[index % len(topics)]
        async with gate:
            return await connect(
                f"{args.url}/ws/live/?topics={topic}",
                additional_headers={"Cookie": args.cookie},
                origin=origin,
                max_queue=None,
                ping_interval=None,
                open_timeout=30,
            )

    sockets = list(await asyncio.gather(*(open_one(i) for i in range(args.count))))
    # The receipts list grows to ~10^6 tuples: with the cyclic collector on, each full
    # collection walks it and stalls every client at once, which would be counted as the
    # server's latency. Nothing here makes cycles worth collecting during a run.
    gc.freeze()
    gc.disable()
    # The server subscribes a page before accepting it: once open, nothing is missed.
    tasks = [asyncio.create_task(listen(s, i, seen)) for i, s in enumerate(sockets)]
    print(f"ready {len(sockets)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    Path(args.out).write_text(json.dumps(seen))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--cookie", required=True)
    parser.add_argument(
        "--topics", required=True, help="';'-separated: client i takes topic i mod n"
    )
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--out", required=True)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
