"""Circuits ingest benchmark: states stored per second through the push API, and push latency.

    python -m bench.circuits_ingest [--duration 20] [--batch 1000] [--clients 4] [--workers 2]

Against real PostgreSQL (its own database, signalbox_circuits_bench unless
BENCH_DATABASE_URL says otherwise), Redis (REDIS_URL) and uvicorn on 127.0.0.1:
1. seeds one team, 50 services x 20 instances x 10 circuits = 10,000 instance-circuits;
2. starts uvicorn (`--workers`, DEBUG off) and a report token;
3. throughput: `--clients` connections POST batches of `--batch` reports to
   /api/v1/circuits/reports for `--duration` seconds, every round with newer timestamps
   (so every report must be stored, none is ignored as a repeat); counts what the API
   accepted and checks PostgreSQL holds the last round;
4. latency under load: meanwhile a websocket page subscribed to one circuit's topic
   (`circuit:<id>`) times report -> pushed fragment, flipping the circuit open/closed;
5. latency idle: the same, with no other load.
Prints the figures and the machine; writes them to var/bench/circuits_ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
SERVICES, INSTANCES, CIRCUITS = 50, 20, 10
FLIP_SECONDS = 0.6  # longer than the live coalescing window, so each flip is pushed at once


def setup_django() -> dict[str, str]:
    """Point Django at the bench database (created and migrated if needed); return the env."""
    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/signalbox_circuits_bench"
    )
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ["SIGNALBOX_EVENT_CONSUMERS"] = ""
    os.environ["DEBUG"] = "false"
    sys.path.insert(0, str(ROOT))
    import psycopg

    from controlplane.env import database_from_url

    db = database_from_url(url)
    with psycopg.connect(
        host=str(db["HOST"]), port=str(db["PORT"] or 5432), user=str(db["USER"]),
        password=str(db["PASSWORD"]), dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone():
            print(f"== creating database {db['NAME']}", flush=True)
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    import django

    django.setup()
    from django.core.management import call_command

    print("== migrating the bench database", flush=True)
    call_command("migrate", verbosity=0)
    return {k: v for k, v in os.environ.items()}


def seed() -> tuple[str, str, int]:
    """The bench catalog, an empty circuits state, a report token, a session; returns
    (token, session cookie, id of the circuit the latency probe flips)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection, transaction

    from catalog.models import ApiToken, Environment, Service, Team
    from circuits.models import Circuit, CircuitOverride, ScrapeTarget
    from controlplane.models import Event

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE circuits_circuittransition, circuits_circuitsample, "
                "circuits_circuitinstancestate, circuits_circuit CASCADE"
            )
        CircuitOverride.objects.all().delete()
        ScrapeTarget.objects.all().delete()
        Event.objects.filter(action__startswith="circuit.").delete()
        team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        env, _ = Environment.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        existing = set(Service.objects.filter(team=team).values_list("slug", flat=True))
        Service.objects.bulk_create(
            [
                Service(slug=f"svc-{i:02d}", name=f"Service {i}", team=team)
                for i in range(SERVICES)
                if f"svc-{i:02d}" not in existing
            ]
        )
        ApiToken.objects.filter(team=team).delete()
        _, token = ApiToken.issue(team=team, name="bench", scopes=["report"])
        user, _ = get_user_model().objects.get_or_create(username="bench-viewer")
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        probe = Circuit.objects.create(
            service=Service.objects.get(slug="svc-00"), environment=env, name="latency-probe"
        )
    return token, f"sessionid={session.session_key}", probe.pk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_uvicorn(port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level",
        "warning", "--ws", "websockets", "--lifespan", "off",
    ]  # fmt: skip
    log = ROOT / "var" / "bench" / "circuits_ingest_uvicorn.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("uvicorn did not start; see its output above") from None
            time.sleep(0.2)
    raise SystemExit("uvicorn did not listen within 30 s")


def batches(batch: int, at: datetime) -> list[bytes]:
    """One round: every instance-circuit once, cut into bodies of `batch` reports."""
    stamp = at.isoformat()
    items = []
    for s in range(SERVICES):
        for i in range(INSTANCES):
            for c in range(CIRCUITS):
                items.append(
                    {
                        "service": f"svc-{s:02d}",
                        "instance": f"10.{s}.{i}.1:8080",
                        "circuit": f"dep-{c}",
                        "state": "open" if (s + i + c) % 97 == 0 else "closed",
                        "reported_at": stamp,
                        "failure_rate": float((s * i + c) % 60),
                        "calls": 100 + c,
                        "failed_calls": c,
                        "rejected_calls": 0,
                    }
                )
    return [
        json.dumps({"environment": "bench", "reports": items[k : k + batch]}).encode()
        for k in range(0, len(items), batch)
    ]


async def throughput(
    base: str, token: str, batch: int, clients: int, duration: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    accepted = ignored = requests = errors = 0
    rounds = 0
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    stop_at = time.monotonic() + duration
    last_stamp = datetime.now(UTC)

    def refill() -> None:
        nonlocal rounds, last_stamp
        last_stamp = max(datetime.now(UTC), last_stamp + timedelta(milliseconds=1))
        for body in batches(batch, last_stamp):
            queue.put_nowait(body)
        rounds += 1

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted, ignored, requests, errors
        while time.monotonic() < stop_at:
            if queue.empty():
                refill()
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(
                f"{base}/api/v1/circuits/reports", data=body, headers=headers
            ) as r:
                answer = await r.json()
            latencies.append(time.perf_counter() - started)
            requests += 1
            if r.status != 202:
                errors += 1
                print("!!", r.status, str(answer)[:300], flush=True)
                continue
            accepted += answer["accepted"]
            ignored += answer["ignored"] + answer["stale"]

    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(clients)))
    elapsed = time.monotonic() - started
    return {
        "batch": batch,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": requests,
        "errors": errors,
        "accepted": accepted,
        "ignored": ignored,
        "rounds_started": rounds,
        "states_per_second": round(accepted / elapsed),
        "request_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "request_p99_ms": round(1000 * quantile(latencies, 0.99), 1) if latencies else None,
        "last_stamp": last_stamp.isoformat(),
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def push_latency(
    base: str, port: int, token: str, cookie: str, circuit_id: int, samples: int,
    stop: asyncio.Event | None = None,
) -> tuple[list[float], list[str]]:  # fmt: skip
    """Report -> fragment on a websocket subscribed to the circuit's page topic, in seconds;
    and the flips whose fragment did not arrive within 10 s."""
    import websockets

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    found: list[float] = []
    lost: list[str] = []
    url = f"ws://127.0.0.1:{port}/ws/live/?topics=circuit:{circuit_id}"
    async with (
        websockets.connect(
            url, additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        ) as ws,
        aiohttp.ClientSession() as session,
    ):
        state = "closed"
        for _ in range(samples):
            if stop is not None and stop.is_set():
                break
            state = "open" if state == "closed" else "closed"
            body = {
                "service": "svc-00", "environment": "bench", "instance": "probe:1",
                "reports": [{"circuit": "latency-probe", "state": state,
                             "reported_at": datetime.now(UTC).isoformat(), "calls": 10}],
            }  # fmt: skip
            wanted = re.compile(
                rf'id="circuit-summary" class="sb-circuit-summary" data-state="{state}"'
            )
            sent = time.perf_counter()
            async with session.post(
                f"{base}/api/v1/circuits/reports", json=body, headers=headers
            ) as r:
                if r.status != 202:
                    raise SystemExit(f"probe report answered {r.status}: {await r.text()}")
            try:
                while True:
                    message = await asyncio.wait_for(ws.recv(), timeout=10)
                    if wanted.search(str(message)):
                        found.append(time.perf_counter() - sent)
                        break
            except TimeoutError:
                lost.append(state)
            await asyncio.sleep(FLIP_SECONDS)
    return found, lost


def stored_in_last_round(stamp: str) -> int:
    from circuits.models import CircuitInstanceState

    return CircuitInstanceState.objects.filter(
        reported_at__gte=datetime.fromisoformat(stamp)
    ).count()


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def ms(values: list[float], q: float) -> float:
    return round(1000 * quantile(values, q), 1)


async def main_async(
    args: argparse.Namespace, token: str, cookie: str, probe: int, port: int
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    print(f"== warm-up: {args.batch}-report batches for 3 s", flush=True)
    await throughput(base, token, args.batch, args.clients, 3)
    print(
        f"== throughput: {args.clients} clients, batches of {args.batch}, {args.duration} s, "
        "with a latency probe running",
        flush=True,
    )
    stop = asyncio.Event()
    probe_task = asyncio.create_task(push_latency(base, port, token, cookie, probe, 10_000, stop))
    result = await throughput(base, token, args.batch, args.clients, args.duration)
    stop.set()
    under_load = await probe_task
    print(f"== latency idle: {args.samples} flips", flush=True)
    idle = await push_latency(base, port, token, cookie, probe, args.samples)
    return {
        "throughput": result,
        "latency_under_load": summary(*under_load),
        "latency_idle": summary(*idle),
    }


def summary(found: list[float], lost: list[str]) -> dict[str, Any]:
    if not found:
        return {"samples": 0, "lost": len(lost)}
    return {
        "samples": len(found),
        "lost": len(lost),
        "p50_ms": ms(found, 0.5),
        "p99_ms": ms(found, 0.99),
        "max_ms": ms(found, 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    env = setup_django()
    print("== seeding 50 services, 10,000 instance-circuits", flush=True)
    token, cookie, probe = seed()
    port = free_port()
    print(f"== starting uvicorn (--workers {args.workers}) on 127.0.0.1:{port}", flush=True)
    server = start_uvicorn(port, args.workers, env)
    try:
        figures = asyncio.run(main_async(args, token, cookie, probe, port))
    finally:
        server.terminate()
        server.wait(10)
    figures["throughput"]["stored_last_round"] = stored_in_last_round(
        figures["throughput"]["last_stamp"]
    )
    figures["machine"] = machine()
    figures["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = ROOT / "var" / "bench" / "circuits_ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    t = figures["throughput"]
    print(
        f"\nstates stored/s: {t['states_per_second']:,} ({t['accepted']:,} in {t['seconds']} s, "
        f"{t['requests']} requests of {args.batch}, p50 {t['request_p50_ms']} ms, "
        f"p99 {t['request_p99_ms']} ms, {t['errors']} errors, {t['ignored']} ignored)"
    )
    for name in ("latency_under_load", "latency_idle"):
        lat = figures[name]
        print(
            f"{name}: p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms, "
            f"max {lat.get('max_ms')} ms ({lat['samples']} samples, {lat['lost']} not pushed "
            "within 10 s)"
        )
    print(f"machine: {figures['machine']}\nwritten to {out}")


if __name__ == "__main__":
    main()
