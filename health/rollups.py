"""Per-minute rollups written by each batch, hourly ones after a day, and uptime from them.

One row per service, environment and minute (not per instance): that is what the charts
and uptime figures show, and it keeps storage at services x buckets, however many
instances and probes there are. Histograms merge exactly, so batches from any number of
workers can add into the same minute.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from health.choices import CheckStatus, Resolution
from health.models import Rollup, Transition
from health.models.history import HISTOGRAM_SIZE, LATENCY_BOUNDS_MS

MINUTE_ROLLUPS_KEPT = timedelta(hours=24)


@dataclass
class Bucket:
    """Counts gathered in memory for one (service, environment, minute) before the upsert."""

    count: int = 0
    failures: int = 0
    warnings: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)

    def add(self, status: str, latency_ms: float) -> None:
        self.count += 1
        if status == CheckStatus.FAIL:
            # A failure's latency is the time to fail (a refusal, a timeout): not the
            # service's latency, so it stays out of the latency figures.
            self.failures += 1
            return
        if status == CheckStatus.WARN:
            self.warnings += 1
        self.latency_sum_ms += latency_ms
        self.latency_max_ms = max(self.latency_max_ms, latency_ms)
        self.histogram[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# The buckets travel as arrays (the histograms as one flat array, HISTOGRAM_SIZE per row).
_UPSERT = """
INSERT INTO health_rollup (service_id, environment_id, resolution, bucket, count, failures,
                           warnings, latency_sum_ms, latency_max_ms, histogram)
SELECT v.service_id, v.environment_id, %s, v.bucket, v.count, v.failures, v.warnings,
       v.latency_sum_ms, v.latency_max_ms,
       (%s::integer[])[(v.n - 1) * %s + 1 : v.n * %s]
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::integer[], %s::integer[],
            %s::integer[], %s::double precision[], %s::double precision[])
     WITH ORDINALITY AS v(service_id, environment_id, bucket, count, failures, warnings,
                          latency_sum_ms, latency_max_ms, n)
ORDER BY v.n
ON CONFLICT (service_id, environment_id, resolution, bucket) DO UPDATE SET
  count = health_rollup.count + EXCLUDED.count,
  failures = health_rollup.failures + EXCLUDED.failures,
  warnings = health_rollup.warnings + EXCLUDED.warnings,
  latency_sum_ms = health_rollup.latency_sum_ms + EXCLUDED.latency_sum_ms,
  latency_max_ms = GREATEST(health_rollup.latency_max_ms, EXCLUDED.latency_max_ms),
  histogram = (SELECT array_agg(a + b ORDER BY i)
               FROM unnest(health_rollup.histogram, EXCLUDED.histogram)
                    WITH ORDINALITY AS t(a, b, i))
"""


def upsert(
    buckets: dict[tuple[int, int, datetime], Bucket], resolution: str = Resolution.MINUTE
) -> None:
    """Add the buckets into their rows, in key order (a fixed lock order: no deadlocks)."""
    if not buckets:
        return
    keys = sorted(buckets)
    rows = [buckets[k] for k in keys]
    flat = [n for b in rows for n in b.histogram]
    params: list[Any] = [
        resolution, flat, HISTOGRAM_SIZE, HISTOGRAM_SIZE,
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        [b.count for b in rows], [b.failures for b in rows], [b.warnings for b in rows],
        [b.latency_sum_ms for b in rows], [b.latency_max_ms for b in rows],
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)


def compact(now: datetime | None = None) -> int:
    """Fold minute rows older than a day into hour rows; returns how many minute rows went."""
    now = now or timezone.now()
    cutoff = hour_of(now - MINUTE_ROLLUPS_KEPT)
    old = Rollup.objects.filter(resolution=Resolution.MINUTE, bucket__lt=cutoff)
    hours: dict[tuple[int, int, datetime], Bucket] = defaultdict(Bucket)
    with transaction.atomic():
        rows = list(old.select_for_update(skip_locked=True)[:20_000])
        for r in rows:
            h = hours[(r.service_id, r.environment_id, hour_of(r.bucket))]
            h.count += r.count
            h.failures += r.failures
            h.warnings += r.warnings
            h.latency_sum_ms += r.latency_sum_ms
            h.latency_max_ms = max(h.latency_max_ms, r.latency_max_ms)
            h.histogram = [a + b for a, b in zip(h.histogram, r.histogram, strict=True)]
        upsert(hours, Resolution.HOUR)
        Rollup.objects.filter(pk__in=[r.pk for r in rows]).delete()
    return len(rows)


def prune(now: datetime | None = None) -> tuple[int, int]:
    """Delete rollups and transitions older than SIGNALBOX_HEALTH_RETENTION_DAYS."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SIGNALBOX_HEALTH_RETENTION_DAYS)
    rollups, _ = Rollup.objects.filter(bucket__lt=cutoff).delete()
    transitions, _ = Transition.objects.filter(at__lt=cutoff).delete()
    return rollups, transitions


def histogram_percentile(histogram: Iterable[int], q: float, maximum: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, interpolated inside its bucket."""
    counts = list(histogram)
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            low = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0
            high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else maximum
            high = min(high, maximum) if maximum else high
            return round(low + (high - low) * max(rank - seen, 0) / n, 2)
        seen += n
    return maximum


@dataclass(frozen=True)
class Point:
    """One bucket of a chart series."""

    at: datetime
    count: int
    failures: int
    warnings: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None

    @property
    def availability(self) -> float | None:
        return None if self.count == 0 else (self.count - self.failures) / self.count


def series(
    service_id: int, environment_id: int, since: datetime, until: datetime, resolution: str
) -> list[Point]:
    """Chart points; hourly series also fold in the last day's minute rows."""
    rows = Rollup.objects.filter(
        service_id=service_id, environment_id=environment_id, bucket__gte=since, bucket__lt=until
    )
    if resolution == Resolution.MINUTE:
        rows = rows.filter(resolution=Resolution.MINUTE)
        return [_point(r.bucket, r) for r in rows.order_by("bucket")]
    hours: dict[datetime, Bucket] = defaultdict(Bucket)
    for r in rows.order_by("bucket"):
        h = hours[hour_of(r.bucket)]
        h.count += r.count
        h.failures += r.failures
        h.warnings += r.warnings
        h.latency_max_ms = max(h.latency_max_ms, r.latency_max_ms)
        h.histogram = [a + b for a, b in zip(h.histogram, r.histogram, strict=True)]
    return [_point(at, h) for at, h in sorted(hours.items())]


def _point(at: datetime, row: Rollup | Bucket) -> Point:
    has_latency = row.count > row.failures
    return Point(
        at=at,
        count=row.count,
        failures=row.failures,
        warnings=row.warnings,
        p50_ms=histogram_percentile(row.histogram, 0.5, row.latency_max_ms),
        p95_ms=histogram_percentile(row.histogram, 0.95, row.latency_max_ms),
        max_ms=row.latency_max_ms if has_latency else None,
    )


UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def uptime(
    service_id: int, environment_id: int, now: datetime | None = None
) -> dict[str, float | None]:
    """Share of probes that did not fail over 24 h, 7 d and 30 d (None: no probes yet)."""
    now = now or timezone.now()
    aggregates = {}
    for name, span in UPTIME_WINDOWS.items():
        recent = Q(bucket__gte=now - span)
        aggregates[f"n_{name}"] = Sum("count", filter=recent)
        aggregates[f"f_{name}"] = Sum("failures", filter=recent)
    totals = Rollup.objects.filter(
        service_id=service_id,
        environment_id=environment_id,
        bucket__gte=now - max(UPTIME_WINDOWS.values()),
    ).aggregate(**aggregates)
    figures: dict[str, float | None] = {}
    for name in UPTIME_WINDOWS:
        n, f = totals[f"n_{name}"] or 0, totals[f"f_{name}"] or 0
        figures[name] = None if n == 0 else round(100.0 * (n - f) / n, 3)
    return figures
