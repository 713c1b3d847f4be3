"""Public status page benchmark: server time and SQL queries of one page with many services.

    python bench/status_page.py [--services 200] [--days 90] [--requests 50]

Against real PostgreSQL (its own database, signalbox_bench_status unless
BENCH_DATABASE_URL says otherwise), emptied first. Seeds one team with N services on one
published page, each with service health (some degraded and down), an hourly rollup for
every hour of the last D days (the page's worst case: SIGNALBOX_HEALTH_RETENTION_DAYS
raised to 90) plus a day of minute rollups, two open published incidents and a few
maintenance windows. Then requests the HTML page and its summary.json through Django's
full request stack in this process, logged out: p50/p95 per request and SQL queries per
request, and the first (cold) request. Past days' bars are cached (statuspage.summary):
clears the cache it is given first, so run it with a REDIS_URL of its own. Prints the
machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 3


def setup_django() -> None:
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/signalbox_bench_status"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ["SIGNALBOX_EVENT_CONSUMERS"] = ""
    sys.path.insert(0, str(ROOT))
    import psycopg

    from controlplane.env import database_from_url

    db = database_from_url(os.environ["DATABASE_URL"])
    with psycopg.connect(
        host=str(db["HOST"]), port=str(db["PORT"] or 5432), user=str(db["USER"]),
        password=str(db["PASSWORD"]), dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        exists = "SELECT 1 FROM pg_database WHERE datname = %s"
        if not conn.execute(exists, [db["NAME"]]).fetchone():
            print(f"== creating database {db['NAME']}", flush=True)
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    import django

    django.setup()


def seed(services: int, days: int) -> None:
    from datetime import timedelta

    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from catalog.models import Environment, Service, Team
    from health.choices import ServiceStatus
    from health.models import MaintenanceWindow, ServiceHealth
    from statuspage.models import PublicIncident, StatusPage, StatusPageService

    print("== migrating and emptying the database", flush=True)
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    print(f"== seeding {services} services, {days} days of rollups", flush=True)
    team = Team.objects.create(slug="shop", name="Shop")
    production = Environment.objects.create(slug="production", name="Production", order=1)
    made = Service.objects.bulk_create(
        [Service(slug=f"svc-{i:04d}", name=f"Service {i}", team=team) for i in range(services)]
    )
    page = StatusPage.objects.create(
        slug="shop", title="Shop", team=team, environment=production, published=True,
        show_team_names=True,
    )  # fmt: skip
    entries = StatusPageService.objects.bulk_create(
        [StatusPageService(page=page, service=s, display_name=s.name, position=i,
                           group=f"Group {i % 5}") for i, s in enumerate(made)]
    )  # fmt: skip
    states = [ServiceStatus.HEALTHY] * 8 + [ServiceStatus.DEGRADED, ServiceStatus.DOWN]
    ServiceHealth.objects.bulk_create(
        [ServiceHealth(service=s, environment=production, status=states[i % len(states)])
         for i, s in enumerate(made)]
    )  # fmt: skip
    now = timezone.now()
    for i, s in enumerate(made[:5]):
        MaintenanceWindow.objects.create(
            service=s, reason="upgrade", starts_at=now + timedelta(hours=i - 1),
            ends_at=now + timedelta(hours=i + 1),
        )  # fmt: skip
    for title in ["Slow checkout", "Search errors"]:
        incident = PublicIncident.objects.create(page=page, title=title, message="Looking.")
        incident.entries.add(*entries[:3])
    ids = [s.pk for s in made]
    with connection.cursor() as cursor:  # one INSERT per table: seconds, not minutes
        # Hours before the last day, minutes in it, the watermark between them.
        day = "date_trunc('hour', now()) - interval '1 day'"
        for table, step, first, last in [
            ("health_rollup_hour", "1 hour", f"{day} - interval '{days} days'",
             f"{day} - interval '1 hour'"),
            ("health_rollup_minute", "1 minute", day, "date_trunc('hour', now())"),
        ]:  # fmt: skip
            cursor.execute(
                f"""
                INSERT INTO {table} (service_id, environment_id, bucket,
                    count, failures, warnings, latency_sum_ms, latency_max_ms, histogram)
                SELECT s, %s, b, 60, (random() < 0.02)::int * 3, 0, 600, 20, '{{}}'
                FROM unnest(%s::bigint[]) AS s,
                     generate_series({first}, {last}, %s::interval) AS b
                ON CONFLICT DO NOTHING
                """,  # noqa: S608 (our constants)
                [production.pk, ids, step],
            )
        cursor.execute(f"UPDATE health_rollup_watermark SET folded_until = {day}")  # noqa: S608
        cursor.execute("ANALYZE health_rollup_hour, health_rollup_minute")


def measure(path: str, requests: int) -> dict[str, Any]:
    from django.core.cache import cache
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    cache.clear()  # the bench's own Redis database: the first request is a cold one
    started = time.perf_counter()
    assert client.get(path).status_code == 200
    cold = (time.perf_counter() - started) * 1000
    for _ in range(WARMUP):
        assert client.get(path).status_code == 200
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        client.get(path)
    times.sort()
    return {
        "cold_ms": round(cold, 1),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
        "queries": len(captured.captured_queries),
        "bytes": len(response.content),
    }


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "?",
    )  # fmt: skip
    load = os.getloadavg()[0]
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()}, load average {load:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    setup_django()
    seed(args.services, args.days)
    from health.models import HourRollup, MinuteRollup

    rows = MinuteRollup.objects.count() + HourRollup.objects.count()
    print(f"== {rows:,} rollup rows; {args.requests} requests per path")
    for path in ["/status/shop/", "/status/shop/api/v2/summary.json"]:
        figures = measure(path, args.requests)
        print(
            f"{path:34} cold {figures['cold_ms']:6.0f} ms  p50 {figures['p50_ms']:6.1f} ms  "
            f"p95 {figures['p95_ms']:6.1f} ms  "
            f"queries {figures['queries']}  {figures['bytes']:,} bytes",
            flush=True,
        )
    print(f"machine: {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
