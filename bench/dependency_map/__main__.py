"""Dependency map benchmark: the graph, its layout, the page and the API as the catalog grows.

    python -m bench.dependency_map [--sizes 60,500] [--requests 20]

Against real PostgreSQL (its own database, signalbox_bench_map unless BENCH_DATABASE_URL
says otherwise), emptied first. Seeds services in five layers, each calling two services
of the next layer (declared), a circuit on every edge in production, 15 minutes of traced
calls on every edge plus a traced database per bottom service, two external dependencies
and every service's health; then times `build_graph`, `lay_out`, `blast_radius` of a bottom
service, the map page and the graph API through Django's full request stack, and counts
the SQL queries of each page. Prints the figures and the machine; writes
var/bench/dependency_map.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LAYERS = 5
WARMUP = 3


def setup() -> None:
    os.environ.setdefault(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/signalbox_bench_map"
    )
    sys.path.insert(0, str(ROOT))
    from bench.dashboard.__main__ import setup_django

    setup_django()
    from django.core.management import call_command

    print("== migrating and emptying the database", flush=True)
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)


def seed(size: int) -> str:
    """`size` services as described above; returns a bottom service's node id."""
    from django.core.management import call_command
    from django.utils import timezone

    from catalog.models import Environment, ExternalDependency, Service, Team
    from circuits.models import Circuit
    from health.models import ServiceHealth
    from topology.models import LATENCY_BOUNDS_MS, EdgeMinute, NodeKind

    call_command("flush", interactive=False, verbosity=0)
    production = Environment.objects.create(
        slug="production", name="Production", is_production=True
    )
    teams = [Team.objects.create(slug=f"team-{i}", name=f"Team {i}") for i in range(6)]
    services = Service.objects.bulk_create(
        Service(slug=f"svc-{i:04d}", name=f"Service {i}", team=teams[i % 6], tier=1 + i % 4)
        for i in range(size)
    )
    per_layer = max(size // LAYERS, 1)
    layers = [services[i : i + per_layer] for i in range(0, size, per_layer)]
    externals = ExternalDependency.objects.bulk_create(
        [ExternalDependency(slug="stripe", name="Stripe"), ExternalDependency(slug="s3", name="S3")]
    )
    through = Service.depends_on.through
    pairs = [
        (caller, lower[(i + k) % len(lower)])
        for upper, lower in itertools.pairwise(layers)
        for i, caller in enumerate(upper)
        for k in (0, 1)
    ]
    through.objects.bulk_create(
        [through(from_service=a, to_service=b) for a, b in pairs], ignore_conflicts=True
    )
    uses = Service.external_dependencies.through
    uses.objects.bulk_create(
        [uses(service=s, externaldependency=externals[s.pk % 2]) for s in layers[-1]]
    )
    Circuit.objects.bulk_create(
        Circuit(
            service=a,
            environment=production,
            name=f"to-{b.slug}",
            protects_service=b,
            state="closed",
        )
        for a, b in dict.fromkeys(pairs)
    )
    ServiceHealth.objects.bulk_create(
        ServiceHealth(service=s, environment=production, status="healthy") for s in services
    )
    now = timezone.now().replace(second=0, microsecond=0)
    buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    buckets[6] = 60
    traced = [(a.slug, b.slug, NodeKind.SERVICE) for a, b in dict.fromkeys(pairs)]
    traced += [(s.slug, "postgresql", NodeKind.VIRTUAL) for s in layers[-1]]
    EdgeMinute.objects.bulk_create(
        EdgeMinute(
            minute=now - timedelta(minutes=m),
            environment=production,
            client=client,
            server=server,
            server_kind=kind,
            calls=60,
            failures=m % 3,
            latency_sum_ms=4500.0,
            latency_buckets=buckets,
        )
        for client, server, kind in traced
        for m in range(15)
    )
    return f"service:{layers[-1][0].slug}"


def timed(run: Callable[[], Any], repeat: int) -> dict[str, float]:
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(int(len(times) * 0.95) - 1, 0)], 1),
    }


def page(client: Any, path: str, repeat: int) -> dict[str, Any]:
    from django.db import connection

    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    figures = timed(lambda: client.get(path), repeat)
    return {"path": path, "queries": len(queries), "bytes": len(response.content), **figures}


def measure(size: int, repeat: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from catalog.models import Environment
    from topology.graph import blast_radius, build_graph
    from topology.layout import lay_out

    origin = seed(size)
    production = Environment.objects.get(slug="production")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.create_superuser("bench", password=None))
    graph = build_graph(production)
    row = {
        "services": size,
        "nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "build_graph": timed(lambda: build_graph(production), repeat),
        "lay_out": timed(lambda: lay_out(graph), repeat),
        "blast_radius": timed(lambda: blast_radius(graph, origin), repeat),
        "map_page": page(client, "/topology/?environment=production", repeat),
        "graph_api": page(client, "/api/v1/topology/graph?environment=production", repeat),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dependency_map", description=__doc__)
    parser.add_argument("--sizes", default="60,500", help="catalog sizes, comma-separated")
    parser.add_argument("--requests", type=int, default=20, help="timed runs of each")
    args = parser.parse_args()
    setup()
    from bench.dashboard.__main__ import machine

    results = [measure(int(size), args.requests) for size in args.sizes.split(",")]
    report = {"machine": machine(), "results": results}
    print(json.dumps(report["machine"]))
    out = ROOT / "var" / "bench" / "dependency_map.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"== written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
