"""Heartbeat ingest benchmark: pings per second through uvicorn into real PostgreSQL.

    python -m bench.heartbeat_ingest [--heartbeats 1000] [--duration 15] [--workers 2]

Starts uvicorn (the production server, `--workers` processes) on a free 127.0.0.1 port
against its own database (signalbox_bench unless BENCH_DATABASE_URL says otherwise),
creates the heartbeats, and has an aiohttp client on the same machine POST success pings
to random ones at a fixed concurrency for --duration seconds. Prints pings/s, latency,
errors, the machine; checks that every answered ping was counted in the database.
Target: at least 1,000 pings/s (Healthchecks.io's open-source handler manages ~250/s).
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

from bench import common

ROOT = Path(__file__).resolve().parents[2]


def setup_django() -> None:
    """Its own database (created and migrated if missing), never the development one."""
    common.setup_django("postgres://postgres@127.0.0.1:5432/signalbox_bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(root_pid: int) -> float:
    """CPU seconds used so far by a process and its children (the uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if root_pid in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total




def prepare(count: int) -> list[str]:
    setup_django()
    from catalog.models import Environment, Service, Team
    from health.models import Heartbeat

    team, _ = Team.objects.get_or_create(slug="bench-hb", defaults={"name": "Bench heartbeats"})
    env, _ = Environment.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    service, _ = Service.objects.get_or_create(
        slug="bench-cron", defaults={"name": "Bench cron", "team": team}
    )
    Heartbeat.objects.filter(service=service).delete()
    made = Heartbeat.objects.bulk_create(
        [
            Heartbeat(name=f"job-{i}", service=service, environment=env, period_seconds=3600)
            for i in range(count)
        ]
    )
    return [str(h.uuid) for h in made]


def counted() -> int:
    from django.db.models import Sum

    from health.models import Heartbeat

    return int(
        Heartbeat.objects.filter(service__slug="bench-cron").aggregate(n=Sum("ping_count"))["n"]
        or 0
    )


async def load(base: str, keys: list[str], seconds: float, concurrency: int) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    body = b"backup finished: 1234 files, 0 errors\n"
    stop_at = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop_at:
            url = f"{base}/api/v1/heartbeats/{random.choice(keys)}"
            started = time.perf_counter()
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors[str(response.status)] = errors.get(str(response.status), 0) + 1
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "ok": len(latencies),
        "elapsed": elapsed,
        "errors": errors,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Heartbeat ingest benchmark (see module doc).")
    parser.add_argument("--heartbeats", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pool", type=int, default=8, help="DB connections per uvicorn worker")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    keys = prepare(args.heartbeats)
    before = counted()
    port = free_port()
    env = {
        **os.environ,
        "SIGNALBOX_EVENT_CONSUMERS": "",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        # One pool per uvicorn process (see SIGNALBOX_DB_POOL_SIZE in docs/health.md).
        "SIGNALBOX_DB_POOL_SIZE": str(args.pool),
    }
    command = [
        sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(args.workers), "--no-access-log",
        "--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--log-level", "warning",
    ]  # fmt: skip
    print(f"== uvicorn with {args.workers} workers on 127.0.0.1:{port}", flush=True)
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("uvicorn did not start; see its output above") from None
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        print("== warm-up 3 s", flush=True)
        asyncio.run(load(base, keys, 3, args.concurrency))
        print(f"== {args.duration:.0f} s at concurrency {args.concurrency}", flush=True)
        load_before = os.getloadavg()[0]
        before = counted()
        cpu0 = process_cpu_seconds(server.pid)
        result = asyncio.run(load(base, keys, args.duration, args.concurrency))
        server_cpu = process_cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(10)
    recorded = counted() - before
    figures = {
        "command": "python -m bench.heartbeat_ingest " + " ".join(sys.argv[1:]),
        "pings_per_s": round(result["ok"] / result["elapsed"], 1),
        "latency_p50_ms": round(result["p50_ms"], 1) if result["p50_ms"] else None,
        "latency_p99_ms": round(result["p99_ms"], 1) if result["p99_ms"] else None,
        "server_cpu_ms_per_ping": round(server_cpu / max(result["ok"], 1) * 1000, 2),
        "pings_per_server_cpu_second": round(result["ok"] / max(server_cpu, 1e-9)),
        "answered_200": result["ok"],
        "recorded_in_db": recorded,
        "errors": result["errors"],
        "uvicorn_workers": args.workers,
        "db_pool_per_worker": args.pool,
        "concurrency": args.concurrency,
        "heartbeats": args.heartbeats,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_at_start": load_before,
            "load_average_1m_at_end": os.getloadavg()[0],
        },
    }
    out = ROOT / "var" / "bench" / "heartbeat_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    verdict = "OK" if figures["pings_per_s"] >= 1000 else "MISSED"
    complete = recorded >= result["ok"]
    print(f"target >= 1,000 pings/s: {verdict}; every answered ping recorded: {complete}")


if __name__ == "__main__":
    main()
