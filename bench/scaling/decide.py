"""(d) The decision loop: N scaling groups x 5 metrics, every group due at once, decided by
the real Celery task body (`scaling.tasks.decide_due`: `autoscaler.decide_due`, which locks
up to CLAIM_BATCH due groups with SKIP LOCKED and decides them in one transaction) in this
one process.

A *tick* of the loop is every due group decided once (what one sync period asks of the
workers: ceil(N / CLAIM_BATCH) task bodies); a *batch* is one body: its claim and its
decisions. Queries are counted with
connection.execute_wrapper, per tick and per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.scaling.common import percentile

PREFIX = "bench-scaling-"
INSTANCES_PER_GROUP = 3
# (source, name, target, reported name, reported value): values near their targets, so a
# round decides "keep" for every group, as most rounds do in a steady fleet.
METRICS = (
    ("cpu", "", 60.0, "cpu_percent", 58.0),
    ("memory", "", 512.0, "memory_mb", 500.0),
    ("latency", "", 200.0, "", 0.0),
    ("custom", "queue_depth", 10.0, "queue_depth", 10.0),
    ("custom_total", "jobs", 20.0, "jobs", 20.0),
)


@dataclass
class Round:
    seconds: float  # the loop's tick: every group decided once
    cpu_seconds: float  # this process's CPU in that tick (the rest: PostgreSQL, waiting)
    queries: int
    calls: int
    batches: list[float]  # seconds of each claim + its decisions
    batch_queries: list[int]
    decided: int


def clear() -> None:
    from catalog.models import Environment, Service, Team

    Service.objects.filter(slug__startswith=PREFIX).delete()
    Environment.objects.filter(slug__startswith=PREFIX).delete()
    Team.objects.filter(slug__startswith=PREFIX).delete()


def seed(groups: int) -> None:
    """`groups` services, each with a group, 3 healthy instances and 5 metrics' readings."""
    from django.utils import timezone

    from catalog.choices import Lifecycle
    from catalog.models import Environment, Instance, Service, Team
    from health.choices import CheckStatus
    from health.models import InstanceCheck
    from scaling.models import InstanceMetric, ScalingGroup, ScalingMetric

    clear()
    now = timezone.now()
    team = Team.objects.create(slug=PREFIX + "team", name="Bench scaling")
    env = Environment.objects.create(slug=PREFIX + "prod", name="Bench scaling", order=90)
    services = Service.objects.bulk_create(
        Service(slug=f"{PREFIX}{n:04d}", name=f"Bench {n}", team=team) for n in range(groups)
    )
    rows = ScalingGroup.objects.bulk_create(
        ScalingGroup(
            service=s,
            environment=env,
            driver="process",
            driver_config={"control_url": "http://127.0.0.1:9"},
            min_instances=1,
            max_instances=10,
            desired=INSTANCES_PER_GROUP,
            readiness_delay_seconds=30,
            # Not due again within a round, however long it takes: a round is N ticks.
            sync_seconds=3600,
            next_due_at=now + timedelta(days=1),
            converge_due_at=now + timedelta(days=1),
        )
        for s in services
    )
    ScalingMetric.objects.bulk_create(
        ScalingMetric(group=g, source=source, name=name, target=target)
        for g in rows
        for source, name, target, _, _ in METRICS
    )
    instances = Instance.objects.bulk_create(
        Instance(
            service=s,
            environment=env,
            host=f"10.{n // 250}.{n % 250}.{i + 1}",
            port=8080,
            version="1.0",
            lifecycle=Lifecycle.ACTIVE,
            registered_at=now - timedelta(hours=1),
        )
        for n, s in enumerate(services)
        for i in range(INSTANCES_PER_GROUP)
    )
    InstanceCheck.objects.bulk_create(
        InstanceCheck(
            instance=i,
            status=CheckStatus.PASS,
            last_result=CheckStatus.PASS,
            last_checked_at=now,
            last_latency_ms=190.0,
            next_due_at=now + timedelta(days=1),
        )
        for i in instances
    )
    InstanceMetric.objects.bulk_create(
        InstanceMetric(instance=i, name=reported, value=value, at=now)
        for i in instances
        for _, _, _, reported, value in METRICS
        if reported
    )


def one_round() -> Round:
    """Every group due now, decided as the task does it (`autoscaler.decide_due`) until
    none is left; each batch timed and its queries counted."""
    from django.db import connection
    from django.utils import timezone

    from scaling import autoscaler
    from scaling.models import InstanceMetric, ScalingGroup

    ours = ScalingGroup.objects.filter(service__slug__startswith=PREFIX)
    # Readings stay fresh (inside the metrics' 60 s window), as reporting instances keep them.
    InstanceMetric.objects.filter(instance__service__slug__startswith=PREFIX).update(
        at=timezone.now()
    )
    ours.update(next_due_at=timezone.now() - timedelta(seconds=1), lease_until=None)
    count = [0]

    def counted(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        count[0] += 1
        return execute(sql, params, many, context)

    calls, batches, batch_queries, decided = 0, [], [], 0
    with connection.execute_wrapper(counted):
        began, cpu_began = time.perf_counter(), time.process_time()
        while True:
            before, start = count[0], time.perf_counter()
            ticks = autoscaler.decide_due()  # the body of scaling.tasks.decide_due
            calls += 1
            if not ticks:
                break
            decided += len([t for t in ticks if t.decided is not None])
            batches.append(time.perf_counter() - start)
            batch_queries.append(count[0] - before)
        seconds = time.perf_counter() - began
        cpu_seconds = time.process_time() - cpu_began
    return Round(seconds, cpu_seconds, count[0], calls, batches, batch_queries, decided)


def run(sizes: list[int], rounds: int) -> list[dict[str, Any]]:
    from django.db import connection

    from scaling.models import ScalingGroup

    # The beat decides every group in the database; only the bench's groups may be due.
    others = ScalingGroup.objects.exclude(service__slug__startswith=PREFIX).count()
    if others:
        raise SystemExit(
            f"the bench database has {others} other scaling group(s): use a database of "
            "its own (BENCH_DATABASE_URL)"
        )
    figures = []
    for groups in sizes:
        print(f"== decision loop: seeding {groups} groups x {len(METRICS)} metrics", flush=True)
        seed(groups)
        one_round()  # warm-up: caches, the first recommendation of each group's window
        results = []
        for n in range(rounds):
            result = one_round()
            if result.decided != groups:
                raise SystemExit(f"round {n}: {result.decided} of {groups} groups decided")
            results.append(result)
        seconds = [r.seconds for r in results]
        batches = [b for r in results for b in r.batches]
        row = {
            "groups": groups,
            "metrics": len(METRICS),
            "rounds": rounds,
            "task_calls": results[0].calls,
            "tick_p50_s": round(percentile(seconds, 50), 3),
            "tick_p99_s": round(percentile(seconds, 99), 3),
            "per_group_ms": round(percentile(seconds, 50) / groups * 1000, 2),
            # On a busy machine the wall time grows with the load; the loop's own CPU barely.
            "tick_cpu_p50_s": round(percentile([r.cpu_seconds for r in results], 50), 3),
            "batch_p50_ms": round(percentile(batches, 50) * 1000, 1),
            "batch_p99_ms": round(percentile(batches, 99) * 1000, 1),
            "batches": len(batches),
            "queries_per_tick": sorted({r.queries for r in results}),
            "queries_per_batch": sorted({q for r in results for q in r.batch_queries}),
            # One worker process keeps up while a tick fits in the groups' sync period.
            "worker_share_at_15s_sync": round(percentile(seconds, 50) / 15, 3),
        }
        print(
            f"   {groups} groups: tick (every group once) p50 {row['tick_p50_s']} s, "
            f"p99 {row['tick_p99_s']} s over {rounds} (its own CPU p50 {row['tick_cpu_p50_s']} s); "
            f"{row['queries_per_tick']} queries per "
            f"tick, {row['queries_per_batch']} per claim batch of up to 500",
            flush=True,
        )
        figures.append(row)
        connection.close()
    clear()
    return figures
