"""Health rollup storage: 500 service-environments, 26 h of minutes written through the real
rollups.upsert path, folded and maintained as the periodic tasks do, then sizes and read
latencies (issue 16 "Storage").

Time is simulated (every call takes `now`): it runs from 26 h before the current hour to
the current hour. The last --hot-hours hours get the production update pattern, each minute
row updated --updates times (one upsert per batch); older minutes get --old-updates each:
their partitions are rewritten packed once finished, so their size does not depend on how
often they were updated (the hot figures show what the updates cost).

    .venv/bin/python -m bench.rollup_storage   # BENCH_DATABASE_URL, else signalbox_bench_rollups
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench import common

# The single-table layout (bench/RESULTS.md, health_throughput): 655 B a row at fillfactor
# 50, 500 x 1,440 minute rows kept.
BEFORE_BYTES_PER_ROW = 655
BEFORE_MINUTE_MB = 472
TARGET_MB = BEFORE_MINUTE_MB / 3


def seed(pairs: int) -> list[tuple[int, int]]:
    from catalog.models import Environment, Service, Team

    team = Team.objects.create(slug="bench-rollups", name="Bench rollups")
    environment = Environment.objects.create(slug="production", name="Production")
    services = Service.objects.bulk_create(
        [Service(team=team, slug=f"rollup-{i:04d}", name=f"Rollup {i}") for i in range(pairs)]
    )
    return [(s.pk, environment.pk) for s in services]


def batches(pairs: list[tuple[int, int]], rng: random.Random) -> list[Any]:
    """Bucket templates: 10 probes a batch, ~20-80 ms (a few buckets of the histogram), 1 %
    failures."""
    from health.rollups import Bucket

    templates = []
    for _ in range(64):
        bucket = Bucket()
        for _ in range(10):
            if rng.random() < 0.01:
                bucket.add("fail", 1000.0)
            else:
                bucket.add("pass", rng.lognormvariate(3.6, 0.4))
        templates.append(bucket)
    return templates


def minute_storage() -> dict[str, float]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint,
                      coalesce(sum(pg_total_relation_size(t.relid))
                               FILTER (WHERE c.reloptions @> '{fillfactor=50}'), 0)::bigint,
                      count(*) FILTER (WHERE t.isleaf)
               FROM pg_partition_tree('health_rollup_minute') t JOIN pg_class c ON c.oid = t.relid
            """
        )
        total, hot, partitions = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM health_rollup_minute")
        (rows,) = cursor.fetchone()
        cursor.execute(
            "SELECT coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_hot_upd), 0)::bigint"
            " FROM pg_stat_user_tables WHERE relname LIKE 'health_rollup_minute_%'"
        )
        updates, hot_updates = cursor.fetchone()
        cursor.execute(
            "SELECT pg_total_relation_size('health_rollup_hour'), count(*) FROM health_rollup_hour"
        )
        hour_bytes, hour_rows = cursor.fetchone()
    return {
        "bytes": total, "hot_bytes": hot, "partitions": partitions, "rows": rows,
        "updates": updates, "hot_updates": hot_updates, "hour_bytes": hour_bytes,
        "hour_rows": hour_rows,
    }  # fmt: skip


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    spent = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        spent.append((time.perf_counter() - start) * 1000)
    return common.percentile(spent, 50), common.percentile(spent, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--hours", type=int, default=26)
    parser.add_argument("--hot-hours", type=int, default=2)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--old-updates", type=int, default=2)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()
    common.setup_django("postgres://postgres@127.0.0.1:5432/signalbox_bench_rollups", flush=True)
    from django.db import connection
    from django.utils import timezone

    from health import rollups
    from health.choices import Resolution

    print(f"== {common.machine()}")
    rng = random.Random(16)
    pairs = seed(args.pairs)
    templates = batches(pairs, rng)
    end = rollups.hour_of(timezone.now())
    start = end - timedelta(hours=args.hours)
    with connection.cursor() as cursor:
        # The flush empties the partitions but keeps them, packed ones at fillfactor 100, which
        # the maintenance would then never rewrite: a running box only ever makes them anew
        # (hot, fillfactor 50). Runs 2 and 3 of 2026-12-04 measured 161 MB that way, not 147.
        for name, _packed in rollups.partitions().values():
            cursor.execute(f"DROP TABLE {name}")
        cursor.execute("INSERT INTO health_rollup_watermark VALUES (1, %s)", [start])
    rollups.ensure_partitions(start)
    upsert_ms: list[float] = []
    maintenance_ms: list[float] = []
    fold_ms: list[float] = []
    began = time.perf_counter()
    minute = start
    while minute < end:
        hot = minute >= end - timedelta(hours=args.hot_hours)
        updates = args.updates if hot else args.old_updates
        for _ in range(updates):
            buckets = {(s, e, minute): rng.choice(templates) for s, e in pairs}
            t = time.perf_counter()
            rollups.upsert(buckets)
            if hot:
                upsert_ms.append((time.perf_counter() - t) * 1000)
        minute += timedelta(minutes=1)
        now = minute + timedelta(seconds=1)
        t = time.perf_counter()
        rollups.fold(now)  # health.tasks.fold_rollups, every minute
        rollups.vacuum_hot(now)
        fold_ms.append((time.perf_counter() - t) * 1000)
        if minute.minute % 10 == 0:  # health.tasks.compact_rollups, every 10 minutes
            t = time.perf_counter()
            rollups.compact(now)
            rollups.prune(now)
            maintenance_ms.append((time.perf_counter() - t) * 1000)
        if minute.minute == 0:
            print(f"   {minute:%H:%M} written ({time.perf_counter() - began:.0f} s)", flush=True)
    now = end
    load_written = os.getloadavg()[0]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE health_rollup_minute, health_rollup_hour")
    size = minute_storage()
    mb = size["bytes"] / 1e6
    per_row = size["bytes"] / size["rows"]
    steady_mb = per_row * args.pairs * 1440 / 1e6
    hour_per_row = size["hour_bytes"] / max(size["hour_rows"], 1)
    print(f"== written in {time.perf_counter() - began:.0f} s; load average {load_written:.2f}")
    print(f"   upsert of {args.pairs} rows (hot): p50 {common.percentile(upsert_ms, 50):.1f} ms, "
          f"p99 {common.percentile(upsert_ms, 99):.1f} ms")  # fmt: skip
    print(f"   fold every minute: p50 {common.percentile(fold_ms, 50):.1f} ms, "
          f"p99 {common.percentile(fold_ms, 99):.1f} ms; maintenance every 10 min: "
          f"p50 {common.percentile(maintenance_ms, 50):.0f} ms, "
          f"max {max(maintenance_ms):.0f} ms")  # fmt: skip
    print(f"   HOT updates {size['hot_updates']:,} of {size['updates']:,}")
    print("== minute storage (tables + indexes + TOAST, all partitions)")
    before = f"{BEFORE_MINUTE_MB} MB, {BEFORE_BYTES_PER_ROW} B a row"
    print(f"   before (one table, fillfactor 50): {before}")
    print(f"   after: {mb:.1f} MB for {size['rows']:,} rows in {size['partitions']} partitions "
          f"({size['hot_bytes'] / 1e6:.1f} MB in the hot ones), {per_row:.0f} B a row")  # fmt: skip
    print(f"   per {args.pairs} x 1,440 minutes: {steady_mb:.1f} MB "
          f"({steady_mb / BEFORE_MINUTE_MB:.2f} of before; target <= {TARGET_MB:.0f} MB: "
          f"{'met' if mb <= TARGET_MB else 'NOT met'} as stored)")  # fmt: skip
    print(f"== hour storage: {size['hour_rows']:,} rows, {hour_per_row:.0f} B a row, "
          f"{hour_per_row * args.pairs * 24 / 1e6:.2f} MB a day")  # fmt: skip

    sample = pairs[:100]
    s, e = pairs[0]
    reads = {
        "day_summaries(100 pairs)": lambda: rollups.day_summaries(sample, now),
        "series 24 h minute": lambda: rollups.series(
            s, e, now - timedelta(hours=24), now, Resolution.MINUTE),
        "series 30 d hour": lambda: rollups.series(
            s, e, now - timedelta(days=30), now, Resolution.HOUR),
        "uptime": lambda: rollups.uptime(s, e, now),
    }  # fmt: skip
    print(f"== reads ({args.reads} each); load average {os.getloadavg()[0]:.2f}")
    for name, call in reads.items():
        p50, p99 = timed(call, args.reads)
        print(f"   {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    summary = rollups.day_summaries(sample, now)[pairs[0]]
    points = sum(p is not None for p in summary.latency_ms)
    print(f"   check: uptime {summary.uptime}, {points} of 24 hourly latency points, "
          f"24 h uptime {rollups.uptime(s, e, now)['24h']}")  # fmt: skip


if __name__ == "__main__":
    main()
