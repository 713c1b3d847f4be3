"""What the tiles' last day costs a page: `health.rollups.day_summaries` over a full day of
minute rollups.

    python -m bench.tile_days [--services 200] [--page 100] [--runs 30]

Against real PostgreSQL (its own database, signalbox_bench_tiles unless BENCH_DATABASE_URL
says otherwise), emptied first. Seeds `--services` services in production with a rollup
for every minute of the last 24 h (as the probe batches write them, through
`health.rollups.upsert`), then times one `day_summaries` call for a page of `--page`
pairs (the overview), for 24 (home's tiles), and beside them `health.rollups.uptime` for
one pair (what the service page already runs), p50/p95 over `--runs` calls each. Prints
the machine and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta

from bench import common

MINUTES = 24 * 60


def seed(services: int) -> list[tuple[int, int]]:
    from django.utils import timezone

    from catalog.models import Environment, Service, Team
    from health import rollups
    from health.rollups import Bucket

    team = Team.objects.create(slug="bench", name="Bench")
    production = Environment.objects.create(slug="production", name="Production", order=20)
    made = Service.objects.bulk_create(
        [Service(slug=f"svc-{i}", name=f"Service {i}", team=team) for i in range(services)]
    )
    now = rollups.minute_of(timezone.now())
    rollups.ensure_partitions(hours_back=24)  # the day's hourly partitions, as a running box has
    for hour in range(24):
        buckets = {}
        for minute in range(60):
            at = now - timedelta(minutes=hour * 60 + minute)
            for n, service in enumerate(made):
                bucket = Bucket()
                for probe in range(6):  # 3 instances probed every 30 s
                    bucket.add("fail" if (n + minute + probe) % 500 == 0 else "pass", 5.0 + n % 40)
                buckets[(service.pk, production.pk, at)] = bucket
        rollups.upsert(buckets)
    rollups.compact()  # what the periodic task does: minutes folded into hours, packed
    return [(s.pk, production.pk) for s in made]


def timed(call: object, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), common.percentile(samples, 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    common.setup_django("postgres://postgres@127.0.0.1:5432/signalbox_bench_tiles", flush=True)
    from django.db import connection

    from health.rollups import day_summaries, uptime

    began = time.monotonic()
    pairs = seed(args.services)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE health_rollup_minute")
        cursor.execute("ANALYZE health_rollup_hour")
        cursor.execute("SELECT count(*) FROM health_rollup_minute")
        rows = cursor.fetchone()[0]
    took = time.monotonic() - began
    print(f"== seeded {args.services} services, {rows} minute rollups in {took:.0f} s")
    print(f"== {common.machine()}")
    print("| call | p50 ms | p95 ms | load (1 min) |\n|---|---|---|---|")
    page, home = pairs[: args.page], pairs[:24]
    for name, call in (
        (f"day_summaries, {len(page)} pairs (overview page)", lambda: day_summaries(page)),
        ("day_summaries, 24 pairs (home)", lambda: day_summaries(home)),
        ("rollups.uptime, 1 pair (service page)", lambda: uptime(*pairs[0])),
    ):
        timed(call, 3)  # warm the cache
        p50, p95 = timed(call, args.runs)
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {os.getloadavg()[0]:.2f} |")


if __name__ == "__main__":
    main()
