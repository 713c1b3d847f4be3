"""Dashboard page benchmark: server time and SQL queries per page as the fleet grows.

    python -m bench.dashboard [--small 200] [--large 2000] [--requests 60] [--skip /topology/]
                              [--only /topology/ --only /deployments/]

Against real PostgreSQL (its own database, signalbox_bench_dash unless BENCH_DATABASE_URL
says otherwise), emptied first. Seeds a fleet with bulk inserts (5 instances per service,
3 in production and 2 in staging, each with its check; service health in both; some down
and degraded; incidents, rollouts, circuits, events, scaling groups, heartbeats, a freeze
and a status page in proportion; 10,000 services take ~45 s on an idle 2-core machine),
then requests every page a user lands on from the dashboard's navigation and one of each
detail page (see pages()) through Django's full request stack (middleware, session,
templates) in this process: time per request (p50/p95), SQL queries and size per page. A
page over a second a request is timed 3 times only. Then grows the fleet to the large size
and measures again: the same queries at both sizes mean the pages do not grow with the
fleet. Prints the machine and the load average beside each page; writes
var/bench/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import common

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = {"production": 3, "staging": 2}
SERVICES_PER_TEAM = 25
WARMUP = 5
TARGET_P95_MS = 100  # issue 16: every page at 10,000 services
TARGET_QUERIES = 20
SLOW_S, SLOW_REQUESTS = 1.0, 3  # a page answering in over a second is timed 3 times only


def setup_django() -> None:
    """Its own database (created and migrated if missing), never the development one."""
    common.setup_django("postgres://postgres@127.0.0.1:5432/signalbox_bench_dash", flush=True)


class Seeder:
    """Grows one fleet in bulk: services are numbered, so growing adds the next ones."""

    def __init__(self) -> None:
        from catalog.models import Environment

        self.environments = {
            slug: Environment.objects.create(
                slug=slug, name=slug.title(), order=order, is_production=slug == "production"
            )
            for slug, order in (("staging", 10), ("production", 20))
        }
        self.services: list[Any] = []
        self.teams: list[Any] = []

    def grow_to(self, total: int) -> None:
        from catalog.models import Service, Team

        start = len(self.services)
        if total <= start:
            return
        began = time.monotonic()
        first_team = len(self.teams)
        wanted_teams = -(-total // SERVICES_PER_TEAM)
        self.teams += Team.objects.bulk_create(
            [Team(slug=f"team-{i}", name=f"Team {i}") for i in range(first_team, wanted_teams)]
        )
        new = Service.objects.bulk_create(
            [
                Service(slug=f"svc-{i}", name=f"Service {i}",
                        team=self.teams[i // SERVICES_PER_TEAM], tier=1 + i % 4,
                        runbook_url=f"https://wiki.example.com/runbooks/svc-{i}")
                for i in range(start, total)
            ],
            batch_size=2000,
        )  # fmt: skip
        self.services += new
        self._instances(new, start)
        self._healths(new, start)
        self._alerts(new, start)
        self._rollouts(new, start)
        self._circuits(new, start)
        self._events(new, start)
        self._extras(new, start)
        print(f"   seeded services {start}..{total - 1} in {time.monotonic() - began:.1f} s",
              flush=True)  # fmt: skip

    def _instances(self, services: list[Any], start: int) -> None:
        from catalog.models import Instance
        from health.choices import CheckStatus
        from health.models import CheckSpec, InstanceCheck

        CheckSpec.objects.bulk_create([CheckSpec(service=s) for s in services], batch_size=2000)
        rows = []
        for n, service in enumerate(services, start):
            for env, count in INSTANCES.items():
                for k in range(count):
                    rows.append(
                        Instance(service=service, environment=self.environments[env],
                                 host=f"10.{n // 250}.{n % 250}.{k + 1}", port=8080,
                                 version="1.0.0", zone=f"zone-{k}")
                    )  # fmt: skip
        instances = Instance.objects.bulk_create(rows, batch_size=5000)
        InstanceCheck.objects.bulk_create(
            [
                InstanceCheck(instance=i, status=CheckStatus.PASS, last_latency_ms=4.2,
                              last_result=CheckStatus.PASS)
                for i in instances
            ],
            batch_size=5000,
        )  # fmt: skip

    def _healths(self, services: list[Any], start: int) -> None:
        from health.choices import ServiceStatus
        from health.models import ServiceHealth

        rows = []
        for n, service in enumerate(services, start):
            for env, count in INSTANCES.items():
                # 2 % down and 5 % degraded, in production only: a bad day, not a disaster.
                status = ServiceStatus.HEALTHY
                if env == "production" and n % 50 == 7:
                    status = ServiceStatus.DOWN
                elif env == "production" and n % 20 == 3:
                    status = ServiceStatus.DEGRADED
                failing = {ServiceStatus.DOWN: count, ServiceStatus.DEGRADED: 1}.get(status, 0)
                rows.append(
                    ServiceHealth(service=service, environment=self.environments[env],
                                  status=status, passing=count - failing, failing=failing,
                                  reason=f"{count - failing}/{count} passing" if failing else "")
                )  # fmt: skip
        ServiceHealth.objects.bulk_create(rows, batch_size=5000)

    def _alerts(self, services: list[Any], start: int) -> None:
        from alerts.choices import IncidentState, RuleKind, Severity
        from alerts.models import Incident, Rule

        teams = {s.team_id for s in services}
        Rule.objects.bulk_create(
            [Rule(team_id=t, name="down", kind=RuleKind.SERVICE_STATE) for t in teams]
        )
        rules = dict(Rule.objects.filter(team_id__in=teams).values_list("team_id", "pk"))
        production = self.environments["production"]
        rows = []
        for n, service in enumerate(services, start):
            # One incident per 40 services: half firing, half acknowledged; and history.
            state = (
                IncidentState.FIRING if n % 80 == 7
                else IncidentState.ACKNOWLEDGED if n % 80 == 47
                else IncidentState.RESOLVED if n % 4 == 0
                else None
            )  # fmt: skip
            if state is None:
                continue
            rows.append(
                Incident(rule_id=rules[service.team_id], team_id=service.team_id,
                         service=service, environment=production,
                         subject_type="catalog.service", subject_id=str(service.pk),
                         subject_label=service.slug, dedup_key=f"bench:{service.pk}",
                         severity=Severity.PAGE, state=state, title=f"{service.slug} is down",
                         reason=f"{service.slug} in production is down")
            )  # fmt: skip
        Incident.objects.bulk_create(rows, batch_size=5000)

    def _rollouts(self, services: list[Any], start: int) -> None:
        from django.utils import timezone

        from deployments.choices import RolloutState, Strategy
        from deployments.models import Rollout

        now = timezone.now()
        rows = []
        steps = [{"set_weight": 10}, {"analysis": {}}, {"set_weight": 50}, {"set_weight": 100}]
        for n, service in enumerate(services, start):
            for env in self.environments.values():
                rows.append(
                    Rollout(team_id=service.team_id, service=service, environment=env,
                            from_version="0.9.0", to_version="1.0.0", strategy=Strategy.CANARY,
                            steps=steps, state=RolloutState.SUCCEEDED, desired_weight=100,
                            applied_weight=100.0, started_at=now - timedelta(days=1),
                            finished_at=now - timedelta(hours=23))
                )  # fmt: skip
            if n % 50 == 11:  # 2 % of services have a rollout under way in production
                rows.append(
                    Rollout(team_id=service.team_id, service=service,
                            environment=self.environments["production"], from_version="1.0.0",
                            to_version="1.1.0", strategy=Strategy.CANARY, steps=steps,
                            step_index=2, state=RolloutState.PROGRESSING, desired_weight=50,
                            applied_weight=50.0, started_at=now - timedelta(minutes=5))
                )  # fmt: skip
        Rollout.objects.bulk_create(rows, batch_size=5000)

    def _circuits(self, services: list[Any], start: int) -> None:
        from django.utils import timezone

        from circuits.choices import SEVERITY, AggregateState
        from circuits.models import Circuit

        now = timezone.now()
        everyone = self.services
        rows = []
        for n, service in enumerate(services, start):
            for k in (1, 2, 3):  # each service calls the three services after it
                target = everyone[(n + k) % len(everyone)]
                state = AggregateState.OPEN if (n + k) % 100 == 5 else AggregateState.CLOSED
                rows.append(
                    Circuit(service=service, environment=self.environments["production"],
                            name=target.slug, protects_service=target, state=state,
                            severity=SEVERITY[state], open_instances=3 if state == "open" else 0,
                            total_instances=3, failure_rate=1.5, call_volume=1200,
                            updated_at=now)
                )  # fmt: skip
        Circuit.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)

    def _events(self, services: list[Any], start: int) -> None:
        from controlplane.models import Event

        rows = [
            Event(action="health.instance.changed", actor_label="system", team_id=s.team_id,
                  service=s, environment=self.environments["production"],
                  subject_type="catalog.instance", subject_label=f"{s.slug}@10.0.0.1:8080",
                  message="pass -> fail", payload={"from": "pass", "to": "fail"})
            for s in services for _ in range(25)
        ]  # fmt: skip
        Event.objects.bulk_create(rows, batch_size=10000)

    def _extras(self, services: list[Any], start: int) -> None:
        """Scaling groups (one per 10 services), heartbeats (two per 5), one freeze window
        and one published status page: what the remaining pages list."""
        from django.utils import timezone

        from deployments.models import FreezeWindow
        from health.models import Heartbeat
        from scaling.models import ScalingGroup
        from statuspage.models import StatusPage, StatusPageService

        production = self.environments["production"]
        now = timezone.now()
        ScalingGroup.objects.bulk_create(
            [
                ScalingGroup(service=s, environment=production, driver="process",
                             driver_config={"control_url": "http://10.0.0.9:7900"},
                             min_instances=1, max_instances=6, desired=3)
                for n, s in enumerate(services, start) if n % 10 == 7
            ],
            batch_size=5000,
        )  # fmt: skip
        Heartbeat.objects.bulk_create(
            [
                Heartbeat(name=f"{name}-{n}", service=s, period_seconds=3600)
                for n, s in enumerate(services, start) if n % 5 == 2
                for name in ("nightly", "backup")
            ],
            batch_size=5000,
        )  # fmt: skip
        if start == 0:
            FreezeWindow.objects.create(
                environment=production, starts_at=now + timedelta(days=1),
                ends_at=now + timedelta(days=2), reason="holidays",
            )  # fmt: skip
            page = StatusPage.objects.create(
                slug="shop", title="Shop", team=self.teams[0], environment=production,
                published=True,
            )  # fmt: skip
            StatusPageService.objects.bulk_create(
                [StatusPageService(page=page, service=s, display_name=s.name)
                 for s in services[:SERVICES_PER_TEAM]]
            )  # fmt: skip


def measure(path: str, client: Any, requests: int) -> dict[str, Any]:
    from django.db import connection

    for n in range(WARMUP):
        began = time.perf_counter()
        assert client.get(path).status_code == 200, path
        if n and time.perf_counter() - began > SLOW_S:  # far over target: a few samples
            requests = min(requests, SLOW_REQUESTS)
            break
    # Counted by a wrapper: Django empties connection.queries when a request starts.
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        assert client.get(path).status_code == 200
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    times.sort()
    return {
        "path": path,
        "queries": len(queries),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(common.percentile(times, 95), 1),
        "requests": len(times),
        "bytes": len(response.content),
    }


def pages(seeder: Seeder) -> list[str]:
    """Every page a user lands on from the dashboard's navigation, and one of each detail
    page (the service down in production, with an incident, a scaling group, heartbeats)."""
    from alerts.models import Incident
    from catalog.models import Instance
    from circuits.models import Circuit
    from deployments.choices import RolloutState
    from deployments.models import Rollout
    from scaling.models import ScalingGroup

    team = seeder.teams[0].slug
    service = seeder.services[7]  # down in production, with an incident
    incident = Incident.objects.filter(service=service).order_by("pk").first()
    rollout = Rollout.objects.filter(state=RolloutState.PROGRESSING).order_by("pk").first()
    circuit = Circuit.objects.filter(service=service).order_by("pk").first()
    group = ScalingGroup.objects.filter(service=service).order_by("pk").first()
    instance = Instance.objects.filter(service=service).order_by("pk").first()
    assert incident and rollout and circuit and group and instance
    return [
        "/",
        "/health/?env=production",
        f"/health/services/{service.slug}/",
        f"/health/instances/{instance.pk}/",
        f"/catalog/teams/{team}/",
        f"/catalog/services/{service.slug}/",
        f"/catalog/services/{service.slug}/heartbeats/",
        "/alerts/",
        f"/alerts/incidents/{incident.pk}/",
        "/alerts/silences/",
        "/deployments/",
        "/deployments/?page=2",
        f"/deployments/rollouts/{rollout.pk}/",
        "/deployments/freezes/",
        "/circuits/",
        f"/circuits/{circuit.pk}/",
        "/scaling/",
        f"/scaling/groups/{group.pk}/",
        "/topology/",
        f"/topology/?team={team}",
        f"/topology/?service={service.slug}&depth=2",
        "/events/",
        f"/search?q={service.slug}",
        "/dependencies/",
        "/status/shop/",
    ]


def machine() -> dict[str, Any]:
    from django.db import connection

    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "",
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return {
        "cpu": model, "cores": os.cpu_count(), "os": platform.platform(),
        "python": platform.python_version(), "postgresql": pg,
        "load_average_1m_at_end": os.getloadavg()[0],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--small", type=int, default=200, help="services in the small fleet")
    parser.add_argument("--large", type=int, default=2000, help="services in the large fleet")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per page")
    parser.add_argument(
        "--skip", action="append", default=[], metavar="PATH",
        help="leave out pages whose path starts with this (repeatable), e.g. /topology/",
    )  # fmt: skip
    parser.add_argument(
        "--only", action="append", default=[], metavar="PATH",
        help="measure only pages whose path starts with this (repeatable), e.g. /deployments/",
    )  # fmt: skip
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model
    from django.test import Client

    seeder = Seeder()
    admin = get_user_model().objects.create_superuser("bench", password="x")  # noqa: S106
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(admin)
    results: dict[str, Any] = {}
    for size in (args.small, args.large):
        print(
            f"== fleet of {size} services, {size * sum(INSTANCES.values())} instances", flush=True
        )
        seeder.grow_to(size)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        results[str(size)] = [
            measure(p, client, args.requests)
            for p in pages(seeder)
            if not any(p.startswith(skip) for skip in args.skip)
            and (not args.only or any(p.startswith(only) for only in args.only))
        ]
        for row in results[str(size)]:
            flag = (
                ""
                if row["p95_ms"] <= TARGET_P95_MS and row["queries"] <= TARGET_QUERIES
                else "  (over target)"
            )
            print(
                f"   {row['path']:<44} {row['queries']:>3} queries  p50 {row['p50_ms']:>7.1f} ms"
                f"  p95 {row['p95_ms']:>7.1f} ms  {row['bytes'] // 1024:>5} KB"
                f"  ({row['requests']} requests, load {os.getloadavg()[0]:.2f}){flag}",
                flush=True,
            )
    report = {"machine": machine(), "requests_per_page": args.requests, "results": results}
    print(json.dumps(report["machine"]))
    out = ROOT / "var" / "bench" / "dashboard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"== wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
