"""What one websocket message costs the web process: frames written once vs the ASGI send.

    python -m bench.live_fanout.send_cost [--pages 500] [--rounds 200] [--size 5000]

In this process: uvicorn as the Procfile runs it (uvloop, `--ws websockets-sansio`, no
per-message deflate) serving a bare ASGI websocket app, and the live hub's `Hub._flush`
sending one batch of `--size` bytes to `--pages` sockets, `--rounds` times, in the same run
against a bare loop (one frame, `transport.write` to each socket, nothing else) and two
ways: **direct** (the hub's path under that server: the batch framed once, the same bytes
written to every socket's transport) and **ASGI send** (the path under any other server,
and the only one before: a writer task per page awaiting uvicorn's `send`, which encodes and
frames the text per page). The pages are bench/live_fanout/clients.py in another process,
so their reading is not counted. Prints this process's CPU per message for each way, after
subtracting an idle loop's CPU over the same rounds. Needs DATABASE_URL and REDIS_URL (the
hub's module imports Django; nothing is queried).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "events"


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import django
    import uvicorn

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    django.setup()
    from controlplane.live.fanout import Hub, LiveClient, text_frame

    sends: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        sends.append(send)
        while (await receive())["type"] != "websocket.disconnect":
            pass

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app, ws="websockets-sansio", ws_per_message_deflate=False, lifespan="off",
        log_level="warning", backlog=max(2048, args.pages),
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        await asyncio.sleep(0.01)
    work = Path(tempfile.mkdtemp())
    pages = subprocess.Popen(
        [sys.executable, "-m", "bench.live_fanout.clients", "--url", f"ws://127.0.0.1:{port}",
         "--cookie", "none", "--topics", TOPIC, "--count", str(args.pages),
         "--commits", str(work / "none.json"), "--out", str(work / "pages.json")],
        cwd=ROOT, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert pages.stdout is not None
    ready = await asyncio.to_thread(pages.stdout.readline)
    assert ready.startswith(b"ready"), ready
    hub = Hub(asyncio.get_running_loop())
    text = '<template><tr id="event-1">' + "x" * max(0, args.size - 40) + "</tr></template>"

    async def rounds(clients: list[LiveClient] | None, bare: bool = False) -> float:
        hub.clients = {TOPIC: set(clients)} if clients else {}
        transports = [send.__self__.transport for send in sends]
        began = time.process_time()
        for _ in range(args.rounds):
            if bare:  # the floor: one frame, a bare write per socket, no checks
                frame = text_frame(text)
                for transport in transports:
                    transport.write(frame)
            elif clients:
                hub._flush({TOPIC: [text]})
            await asyncio.sleep(0.02)  # the writers and the kernel drain
        return time.process_time() - began

    idle = await rounds(None)
    direct = [LiveClient(hub, send, [TOPIC]) for send in sends]
    # Through a plain function the hub cannot see uvicorn's protocol: the ASGI send path.
    via_asgi = [LiveClient(hub, through(send), [TOPIC]) for send in sends]
    for client in direct + via_asgi:
        client.start()
    assert all(c.transport is not None for c in direct)
    assert all(c.transport is None for c in via_asgi)
    results: dict[str, Any] = {"pages": len(sends), "rounds": args.rounds, "size": len(text)}
    bare = await rounds(None, bare=True)
    results["bare_write_us_per_message"] = round(
        1e6 * (bare - idle) / (args.rounds * len(sends)), 2
    )
    for name, clients in (("direct", direct), ("asgi_send", via_asgi), ("direct_again", direct)):
        cpu = await rounds(clients)
        results[f"{name}_us_per_message"] = round(
            1e6 * (cpu - idle) / (args.rounds * len(clients)), 2
        )
    for client in direct + via_asgi:
        client.stop()
    pages.terminate()
    await asyncio.to_thread(pages.wait, 60)
    server.should_exit = True
    await asyncio.wait_for(serving, 30)
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    return results


def through(send: Any) -> Any:
    async def plain(message: dict[str, Any]) -> None:
        await send(message)

    return plain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--size", type=int, default=5000, help="bytes per batch")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import uvloop

    results = uvloop.run(measure(args))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
