"""Trace ingest benchmark: spans into edge aggregates per second on one web process.

    python -m bench.trace_ingest [--duration 15] [--clients 4] [--batch 512]

Against real PostgreSQL (its own database, signalbox_trace_bench unless BENCH_DATABASE_URL
says otherwise), Redis (REDIS_URL) and one uvicorn process (1 worker, DEBUG off):
1. seeds one team with 20 services, an environment and a report token;
2. builds OTLP/protobuf ExportTraceServiceRequests as the SDK's BatchSpanProcessor sends
   them: one service's resource, `--batch` spans each (the SDK's default 512), with the
   attributes HTTP instrumentation sets. Each trace is a root SERVER span in one service,
   a CLIENT call to another, that one's SERVER span and an INTERNAL span; every span goes
   in its own service's batch, so client and server halves of a call arrive in different
   requests and pair through the Redis short-wait store, as they do between processes;
3. `--clients` connections POST the batches to /v1/traces for `--duration` seconds;
4. prints spans/s, requests/s, p50/p99 request latency and the server's CPU, checks that
   EdgeMinute holds every paired call, and writes var/bench/trace_ingest.json.
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

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
SERVICES = 20


def setup_django() -> dict[str, str]:
    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/signalbox_trace_bench"
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
    return dict(os.environ)


def seed() -> str:
    from django.db import connection, transaction

    from catalog.models import ApiToken, Environment, Service, Team
    from controlplane import redis as redis_clients

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE topology_edgeminute")
        team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        Environment.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
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
    r = redis_clients.client()
    for key in r.scan_iter("sbx:otlp:*"):
        r.delete(key)
    return token


def build(spans_wanted: int, batch: int) -> tuple[list[bytes], int]:
    """Protobuf bodies of `batch` spans, each of one service; returns them and the calls."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    rng = random.Random(13)
    buffers: dict[int, list[tuple[Any, ...]]] = {i: [] for i in range(SERVICES)}
    bodies: list[bytes] = []
    calls = 0
    now = time.time_ns()

    def flush(service: int) -> None:
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        for key, value in (
            ("service.name", f"svc-{service:02d}"),
            ("deployment.environment.name", "bench"),
            ("telemetry.sdk.language", "python"),
            ("telemetry.sdk.name", "opentelemetry"),
            ("telemetry.sdk.version", "1.45.2"),
        ):
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = key, value
        scope = rs.scope_spans.add()
        scope.scope.name = "opentelemetry.instrumentation.aiohttp"
        for kind, trace_id, span_id, parent, start, dur, error, peer in buffers[service]:
            span = scope.spans.add()
            span.trace_id, span.span_id, span.parent_span_id = trace_id, span_id, parent
            span.name, span.kind = "GET /api/work", kind
            span.start_time_unix_nano, span.end_time_unix_nano = start, start + dur
            span.flags = 0x101
            attributes: tuple[tuple[str, str | int], ...] = (
                ("http.request.method", "GET"),
                ("url.path", "/api/work"),
                ("http.response.status_code", 500 if error else 200),
                ("server.address", peer or "127.0.0.1"),
                ("network.protocol.version", "1.1"),
            )
            for name, attribute in attributes:
                kv = span.attributes.add()
                kv.key = name
                if isinstance(attribute, int):
                    kv.value.int_value = attribute
                else:
                    kv.value.string_value = attribute
            if error:
                span.status.code = 2
        bodies.append(request.SerializeToString())
        buffers[service].clear()

    def add(service: int, span: tuple[Any, ...]) -> None:
        buffers[service].append(span)
        if len(buffers[service]) >= batch:
            flush(service)

    made = 0
    while made < spans_wanted:
        trace_id = rng.randbytes(16)
        a, b = rng.sample(range(SERVICES), 2)
        root, client, server, internal = (rng.randbytes(8) for _ in range(4))
        start = now + made * 1000
        error = rng.random() < 0.02
        server_ms = int(rng.lognormvariate(2.5, 0.8) * 1e6)
        add(a, (Span.SPAN_KIND_SERVER, trace_id, root, b"", start, server_ms * 2, error, ""))
        add(a, (Span.SPAN_KIND_CLIENT, trace_id, client, root, start, server_ms + 2_000_000,
                error, f"svc-{b:02d}"))  # fmt: skip
        add(b, (Span.SPAN_KIND_SERVER, trace_id, server, client, start, server_ms, error, ""))
        add(b, (Span.SPAN_KIND_INTERNAL, trace_id, internal, server, start, server_ms // 2,
                False, ""))  # fmt: skip
        made += 4
        calls += 1
    for service in range(SERVICES):
        if buffers[service]:
            flush(service)
    return bodies, calls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_uvicorn(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # As the Procfile runs the web process: a connection pool, not a connection per request.
    env = {**env, "SIGNALBOX_DB_POOL_SIZE": env.get("SIGNALBOX_DB_POOL_SIZE") or "8"}
    command = [
        sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning",
        "--lifespan", "off",
    ]  # fmt: skip
    log = ROOT / "var" / "bench" / "trace_ingest_uvicorn.log"
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
                raise SystemExit(f"uvicorn did not start; see {log}") from None
            time.sleep(0.2)
    raise SystemExit("uvicorn did not listen within 30 s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def post_all(
    url: str, token: str, bodies: list[bytes], clients: int, duration: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    spans_sent = 0
    cursor = 0
    deadline = time.monotonic() + duration
    rejected = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal cursor, spans_sent, rejected
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        while time.monotonic() < deadline and cursor < len(bodies):
            body = bodies[cursor]
            cursor += 1
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                raw = await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 200:
                answer = ExportTraceServiceResponse.FromString(raw)
                rejected += answer.partial_success.rejected_spans
                spans_sent += body.count(b"GET /api/work")  # one name per span

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "elapsed_s": elapsed,
        "requests": len(latencies),
        "bodies_used": cursor,
        "statuses": statuses,
        "spans": spans_sent,
        "rejected_spans": rejected,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    env = setup_django()
    token = seed()
    print("== building batches", flush=True)
    bodies, _ = build(int(60_000 * args.duration), args.batch)
    print(f"   {len(bodies)} requests of up to {args.batch} spans", flush=True)
    port = free_port()
    process = start_uvicorn(port, env)
    url = f"http://127.0.0.1:{port}/v1/traces"
    try:
        # Warm up: the catalog cache, the Lua script, connections (not measured, not stored).
        warm = asyncio.run(post_all(url, token, bodies[:4], 1, 30))
        assert warm["statuses"] == {200: 4}, warm
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE topology_edgeminute")
        before = cpu_seconds(process.pid)
        result = asyncio.run(post_all(url, token, bodies[4:], args.clients, args.duration))
        cpu = cpu_seconds(process.pid) - before
    finally:
        process.terminate()
        process.wait(10)
    from django.db.models import Sum

    from topology.ingest.service import stats
    from topology.models import EdgeMinute

    stored = EdgeMinute.objects.aggregate(calls=Sum("calls"))["calls"] or 0
    figures = {
        **result,
        "spans_per_s": result["spans"] / result["elapsed_s"],
        "requests_per_s": result["requests"] / result["elapsed_s"],
        "server_cpu_percent_of_one_core": 100 * cpu / result["elapsed_s"],
        "calls_stored": stored,
        "ingest_stats": stats(),
        "clients": args.clients,
        "batch": args.batch,
        "machine": machine(),
    }
    out = ROOT / "var" / "bench" / "trace_ingest.json"
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(
        f"\n{figures['spans_per_s']:,.0f} spans/s ({figures['requests_per_s']:.1f} requests/s "
        f"of {args.batch} spans, {args.clients} connections); request p50 "
        f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; server CPU "
        f"{figures['server_cpu_percent_of_one_core']:.0f} % of one core; "
        f"{stored:,} calls in EdgeMinute; answers {result['statuses']}"
    )
    if set(result["statuses"]) != {200}:
        raise SystemExit(
            "some exports were not answered 200: see var/bench/trace_ingest_uvicorn.log"
        )


if __name__ == "__main__":
    main()
