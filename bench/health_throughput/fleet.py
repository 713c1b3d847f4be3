"""Simulated instances for the health benchmark: one aiohttp app on many ports of 127.0.0.1.

Each port is one instance (its own listening socket, as a real fleet has), answering
GET /health with a small application/health+json document; every 100th port answers
503 with a failing component so failures, reasons and rollups are exercised too.

    python -m bench.health_throughput.fleet --ports-file ports.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal

from aiohttp import web

PASS_BODY = json.dumps(
    {"status": "pass", "checks": {"db:ping": [{"status": "pass", "observedValue": 1}]}}
).encode()
FAIL_BODY = json.dumps(
    {"status": "fail", "checks": {"db:ping": [{"status": "fail", "output": "connection refused"}]}}
).encode()


def failing(port: int) -> bool:
    return port % 100 == 0


async def serve(ports: list[int]) -> None:
    async def health(request: web.Request) -> web.Response:
        port = request.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        if failing(port):
            return web.Response(status=503, body=FAIL_BODY, content_type="application/health+json")
        return web.Response(body=PASS_BODY, content_type="application/health+json")

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=128).start()
    print(f"fleet: {len(ports)} instances listening on 127.0.0.1 ({ports[0]}...)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports-file", required=True, help="a JSON list of ports to listen on")
    args = parser.parse_args()
    with open(args.ports_file) as f:
        ports = [int(p) for p in json.load(f)]
    # A listening socket and a kept-alive connection per instance: 2 fds each.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(ports))
    else:
        uvloop.run(serve(ports))


if __name__ == "__main__":
    main()
