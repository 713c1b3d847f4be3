"""`python -m fleet bench`: start a big fleet in its own process, then measure start time,
memory, sockets, /health throughput and shutdown time from this one."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from fleet.plan import load_plan

CLIENT_CONCURRENCY = 128
START_TIMEOUT = 300.0


def run_bench(config: Path, count_per_service: int, probes: int, base_port: int = 0) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    state = workdir / "fleet.json"
    log = (workdir / "fleet.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-m", "fleet", "run", "--config", str(config),
         "--count-per-service", str(count_per_service), "--base-port", str(base_port),
         "--control-port", "0", "--state", str(state)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        while not state.exists():
            if proc.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                print(f"fleet did not start; see {workdir / 'fleet.log'}", file=sys.stderr)
                return 1
            time.sleep(0.05)
        start_seconds = time.monotonic() - started
        plan = load_plan(state)
        targets = [(i.host, i.port) for i in plan.instances]
        rss_idle = _rss_mb(proc.pid)
        fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        elapsed, latencies, errors = asyncio.run(_probe(targets, probes))
        rss_busy = _rss_mb(proc.pid)
    finally:
        stop_started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stop_seconds = time.monotonic() - stop_started
        log.close()
    latencies.sort()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}")
    print(f"instances: {len(targets)} ({count_per_service} per service per environment)")
    print(f"start: {start_seconds:.2f} s until every instance listened")
    print(f"memory: {rss_idle:.0f} MB RSS idle, {rss_busy:.0f} MB after the probes; "
          f"open file descriptors: {fds}")
    print(f"/health: {len(latencies)} answered, {errors} errors, in {elapsed:.2f} s "
          f"= {len(latencies) / elapsed:.0f}/s, {CLIENT_CONCURRENCY} concurrent, a new "
          f"connection each; "
          f"p50 {_pct(latencies, 50):.1f} ms, p99 {_pct(latencies, 99):.1f} ms")
    print(f"stop: {stop_seconds:.2f} s after SIGTERM (exit code {proc.returncode})")
    return 0 if errors == 0 and proc.returncode == 0 else 1


async def _probe(
    targets: list[tuple[str, int]], probes: int,
) -> tuple[float, list[float], int]:
    """GET /health on a new connection each time, as a prober of many instances does.
    Raw asyncio streams rather than aiohttp's client: its pool, keyed per host, slows
    down with thousands of distinct hosts and would measure itself, not the fleet."""
    latencies: list[float] = []
    errors = 0
    queue = iter(targets[n % len(targets)] for n in range(probes))

    async def worker() -> None:
        nonlocal errors
        for host, port in queue:
            t = time.monotonic()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout=30,
                )
                writer.write(f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n"
                             "Connection: close\r\n\r\n".encode())
                answer = await asyncio.wait_for(reader.read(), timeout=30)
                writer.close()
            except (OSError, TimeoutError):
                errors += 1
                continue
            if not answer.startswith(b"HTTP/1.1 200 "):
                errors += 1
                continue
            latencies.append(1000 * (time.monotonic() - t))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CLIENT_CONCURRENCY)))
    return time.monotonic() - started, latencies, errors


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _pct(values: list[float], percent: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * percent / 100))]
