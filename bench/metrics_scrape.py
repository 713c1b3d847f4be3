"""/metrics scrape benchmark: server time and SQL queries per scrape as the fleet grows.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/signalbox_bench_metrics \\
      REDIS_URL=redis://127.0.0.1:6379/4 .venv/bin/python bench/metrics_scrape.py \\
      [--sizes 200,2000] [--scrapes 30]

Against real PostgreSQL (its own database, emptied first) and Redis. For each size, grows
one fleet in bulk: per service 5 instances with their checks (3 in production, 2 in
staging), service health in both environments (1 in 20 down, 1 in 10 degraded), 10
finished rollouts and 1 in 50 active (some overdue), 5 resolved incidents and 1 in 20 open,
20 delivered notifications and 1 in 25 waiting, a scaling group for 1 in 4 services; and
the probe histograms in Redis as the workers leave them. Then scrapes `GET /metrics`
through Django's full request stack in this process, `--scrapes` times after 3 warm-up
scrapes: time per scrape (p50/p95/max), SQL queries per scrape, bytes and series, and the
slowest source. Prints the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python bench/metrics_scrape.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 3




def setup_django() -> None:
    """Its own database (created and migrated if missing), never the development one."""
    common.setup_django("postgres://postgres@127.0.0.1:5432/signalbox_bench_metrics", flush=True)


class Fleet:
    """Grows in bulk: services are numbered, so growing adds the next ones."""

    def __init__(self) -> None:
        from alerts.models import Channel, Rule
        from catalog.models import Environment, Team

        self.team = Team.objects.create(slug="bench", name="Bench")
        self.environments = [
            Environment.objects.create(slug="staging", name="Staging", order=10),
            Environment.objects.create(
                slug="production", name="Production", order=20, is_production=True
            ),
        ]
        self.rule = Rule.objects.create(team=self.team, name="down", kind="service_state")
        self.channels = [
            Channel.objects.create(team=self.team, name=kind, kind=kind)
            for kind in ("slack", "pagerduty", "webhook", "email")
        ]
        self.size = 0

    def grow_to(self, total: int) -> None:
        from catalog.models import Service

        services = Service.objects.bulk_create(
            Service(slug=f"svc-{n:05}", name=f"Service {n}", team=self.team)
            for n in range(self.size, total)
        )
        self._health(services)
        self._deployments(services)
        self._alerts(services)
        self._scaling(services)
        self.size = total

    def _health(self, services: list[Any]) -> None:
        from catalog.models import Instance
        from health.models import InstanceCheck, ServiceHealth

        staging, production = self.environments
        instances = Instance.objects.bulk_create(
            (
                Instance(service=s, environment=env, host=f"{s.slug}.internal", port=port)
                for s in services
                for env, port in [(production, 1), (production, 2), (production, 3),
                                  (staging, 1), (staging, 2)]
            ),
            batch_size=5000,
        )  # fmt: skip
        statuses = ["pass"] * 17 + ["fail", "warn", "unknown"]
        InstanceCheck.objects.bulk_create(
            (InstanceCheck(instance=i, status=statuses[i.pk % 20]) for i in instances),
            batch_size=5000,
        )
        health = ["healthy"] * 17 + ["down", "degraded", "degraded"]
        ServiceHealth.objects.bulk_create(
            (
                ServiceHealth(service=s, environment=env, status=health[(s.pk + env.pk) % 20])
                for s in services
                for env in self.environments
            ),
            batch_size=5000,
        )

    def _deployments(self, services: list[Any]) -> None:
        from django.utils import timezone

        from deployments.models import Rollout

        now = timezone.now()
        production = self.environments[1]
        finished = ["succeeded"] * 8 + ["rolled_back", "failed"]
        rows = [
            Rollout(team=self.team, service=s, environment=production, to_version=str(n),
                    strategy="canary", state=state)
            for s in services
            for n, state in enumerate(finished)
        ]  # fmt: skip
        rows += [
            Rollout(team=self.team, service=s, environment=production, to_version="next",
                    strategy="canary", state="progressing",
                    next_action_at=now - timedelta(seconds=s.pk % 5))
            for s in services
            if s.pk % 50 == 0
        ]  # fmt: skip
        Rollout.objects.bulk_create(rows, batch_size=5000)

    def _alerts(self, services: list[Any]) -> None:
        from django.utils import timezone

        from alerts.models import Incident, Notification

        now = timezone.now()
        incidents = [
            Incident(rule=self.rule, team=self.team, service=s, subject_type="catalog.service",
                     subject_id=str(s.pk), subject_label=s.slug, dedup_key=f"{s.pk}-{n}",
                     severity=("page", "ticket")[n % 2], title=f"{s.slug} down",
                     state="firing" if n == 0 and s.pk % 20 == 0 else "resolved")
            for s in services
            for n in range(5)
        ]  # fmt: skip
        Incident.objects.bulk_create(incidents, batch_size=5000)
        Notification.objects.bulk_create(
            (
                Notification(
                    channel=self.channels[n % 4], action="trigger",
                    state="pending" if n == 0 and s.pk % 25 == 0 else "delivered",
                    created_at=now - timedelta(seconds=n * 60),
                )
                for s in services
                for n in range(20)
            ),
            batch_size=5000,
        )  # fmt: skip

    def _scaling(self, services: list[Any]) -> None:
        from scaling.models import ScalingGroup

        production = self.environments[1]
        ScalingGroup.objects.bulk_create(
            ScalingGroup(service=s, environment=production, driver="process", desired=3)
            for s in services
            if s.pk % 4 == 0
        )


def probe_histograms() -> None:
    """What a day of workers leaves in Redis: every kind and result has observations."""
    from health.metrics import record_probes

    record_probes(
        (kind, result, ms, ms / 100_000)
        for kind in ("http", "tcp", "grpc", "tls")
        for result in ("pass", "warn", "fail")
        for ms in (2, 8, 30, 80, 200, 700, 3000)
    )


def scrape(scrapes: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from prometheus_client.parser import text_string_to_metric_families

    client = Client(HTTP_HOST="localhost")  # an allowed host, as behind the real server
    for _ in range(WARMUP):
        client.get("/metrics")
    times, queries = [], []
    body = b""
    for _ in range(scrapes):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get("/metrics")
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        queries.append(len(captured.captured_queries))
        body = response.content
    families = list(text_string_to_metric_families(body.decode()))
    sources = {
        s.labels["source"]: s.value * 1000
        for f in families
        if f.name == "signalbox_metrics_source_duration_seconds"
        for s in f.samples
    }
    down = [
        s.labels["source"]
        for f in families
        if f.name == "signalbox_metrics_source_up"
        for s in f.samples
        if s.value != 1
    ]
    assert not down, f"sources down: {down}"
    slowest = max(sources, key=lambda name: sources[name])
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[max(int(len(times) * 0.95) - 1, 0)],
        "max": times[-1],
        "queries": sorted(set(queries)),
        "bytes": len(body),
        "series": sum(len(f.samples) for f in families),
        "slowest": f"{slowest} {sources[slowest]:.1f} ms",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000", help="services, comma-separated")
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    setup_django()
    probe_histograms()
    print(
        f"== machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()}; load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    fleet = Fleet()
    print("services | scrape p50 / p95 / max | SQL queries | series | bytes | slowest source")
    for size in (int(s) for s in args.sizes.split(",")):
        fleet.grow_to(size)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        r = scrape(args.scrapes)
        queries = "/".join(str(q) for q in r["queries"])
        print(
            f"{size} | {r['p50']:.1f} / {r['p95']:.1f} / {r['max']:.1f} ms | {queries} | "
            f"{r['series']} | {r['bytes']} | {r['slowest']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
