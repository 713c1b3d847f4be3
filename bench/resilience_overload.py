"""Overload: the web tier at 3x the heartbeat bench's rate, with load shedding on and off.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/signalbox_bench \\
      REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/resilience_overload.py \\
      [--seconds 15] [--workers 2] [--limit 64] [--factor 3]

Starts uvicorn as bench.heartbeat_ingest does (its own database, `--workers` processes),
measures the rate it sustains with the heartbeat bench's closed loop (64 clients), then
offers `--factor` times that rate open-loop (a new request every 1/rate s, whatever the
answers do) for `--seconds`, once with SIGNALBOX_MAX_IN_FLIGHT=`--limit` and once with 0
(no shedding). Prints per run: answered 200/s, shed (503 with Retry-After), timeouts
(no answer within 5 s) and other errors, latency of the 200s and of the sheds, and how long
after the load stopped 20 pings in a row answered 200 within 100 ms (recovered).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.heartbeat_ingest.__main__ import free_port, load, prepare  # noqa: E402

CLIENT_TIMEOUT_SECONDS = 5.0
CONNECTIONS = 256


def start(port: int, workers: int, limit: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SIGNALBOX_EVENT_CONSUMERS": "",
        "DEBUG": "false",
        "LOG_LEVEL": "ERROR",
        "SIGNALBOX_DB_POOL_SIZE": "8",
        "SIGNALBOX_MAX_IN_FLIGHT": str(limit),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--host",
         "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
         "--lifespan", "off", "--log-level", "error"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("uvicorn did not start; see its output above") from None
            time.sleep(0.2)


async def open_loop(base: str, keys: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """A request every 1/rate s for `seconds`, each on its own task: answers do not pace it."""
    import aiohttp

    ok: list[float] = []
    shed: list[float] = []
    counts: dict[str, int] = {}
    missing_retry_after = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal missing_retry_after
        started = time.perf_counter()
        try:
            url = f"{base}/api/v1/heartbeats/{random.choice(keys)}"
            async with session.post(url, data=b"ok") as response:
                await response.read()
                took = time.perf_counter() - started
                if response.status == 200:
                    ok.append(took)
                elif response.status == 503:
                    shed.append(took)
                    missing_retry_after += "Retry-After" not in response.headers
                else:
                    counts[str(response.status)] = counts.get(str(response.status), 0) + 1
        except TimeoutError:
            counts["timeout"] = counts.get("timeout", 0) + 1
        except aiohttp.ClientError as exc:
            counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1

    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    # Clients keep their connections (as an HTTP client library does); past CONNECTIONS in
    # use, a request waits for one, and that wait counts towards its timeout.
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks: list[asyncio.Task[None]] = []
        began = time.perf_counter()
        sent = 0
        while (now := time.perf_counter() - began) < seconds:
            due = int(now * rate) + 1
            for _ in range(due - sent):
                tasks.append(asyncio.create_task(one(session)))
            sent = due
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
        recovered = await recovery(session, base, keys)
    ok.sort()
    shed.sort()
    return {
        "offered": sent,
        "offered_per_s": round(sent / seconds),
        "ok_per_s": round(len(ok) / seconds),
        "shed_503": len(shed),
        "shed_without_retry_after": missing_retry_after,
        "timeouts_and_errors": counts,
        "ok_p50_ms": _ms(ok, 0.5),
        "ok_p99_ms": _ms(ok, 0.99),
        "shed_p99_ms": _ms(shed, 0.99),
        "recovered_after_s": recovered,
    }


async def recovery(session: Any, base: str, keys: list[str]) -> float | None:
    """Seconds from now until 20 pings in a row answer 200 within 100 ms (None: not in 30 s)."""
    began = time.perf_counter()
    streak = 0
    while time.perf_counter() - began < 30:
        started = time.perf_counter()
        try:
            async with session.post(f"{base}/api/v1/heartbeats/{keys[0]}", data=b"ok") as r:
                await r.read()
                good = r.status == 200 and time.perf_counter() - started < 0.1
        except Exception:
            good = False
        streak = streak + 1 if good else 0
        if streak >= 20:
            return round(time.perf_counter() - began, 2)
    return None


def _ms(values: list[float], q: float) -> float | None:
    return round(values[min(int(len(values) * q), len(values) - 1)] * 1000, 1) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description="Overload benchmark (see module doc).")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=64, help="SIGNALBOX_MAX_IN_FLIGHT")
    parser.add_argument("--factor", type=float, default=3.0)
    args = parser.parse_args()
    keys = prepare(1000)
    runs: dict[str, Any] = {}
    base_rate = 0.0
    for label, limit in (("shedding", args.limit), ("no shedding", 0)):
        port = free_port()
        server = start(port, args.workers, limit)
        base = f"http://127.0.0.1:{port}"
        try:
            if not base_rate:
                print("== the heartbeat bench's closed loop (64 clients, 10 s)", flush=True)
                asyncio.run(load(base, keys, 3, 64))
                measured = asyncio.run(load(base, keys, 10, 64))
                base_rate = measured["ok"] / measured["elapsed"]
                runs["heartbeat_bench_rate_per_s"] = round(base_rate)
            rate = base_rate * args.factor
            print(f"== {label}: {rate:.0f} pings/s open-loop for {args.seconds:g} s", flush=True)
            runs[label] = asyncio.run(open_loop(base, keys, rate, args.seconds))
            runs[label]["limit"] = limit
        finally:
            server.terminate()
            server.wait(15)
    report = {
        "command": "bench/resilience_overload.py " + " ".join(sys.argv[1:]),
        **runs,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": os.getloadavg()[0],
        },
    }
    out = ROOT / "var" / "bench" / "resilience_overload.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
