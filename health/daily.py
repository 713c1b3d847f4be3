"""A service's last day at a glance, for its tiles: 24-hour uptime and hourly latency.

One SQL query for any number of (service, environment) pairs: a page computes its tiles'
summaries once (never per tile) from the rollups (health/rollups.py), grouped by hour in
the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from health.rollups import UPTIME_WINDOWS, hour_of

HOURS = 24


@dataclass(frozen=True)
class DaySummary:
    """A pair's last day. `uptime`: percent of probes in the last 24 h that did not fail
    (health.rollups.uptime's "24h": round(100 * (n - f) / n, 3)); None when no probes.
    `latency_ms`: 24 hourly points, oldest first, ending with the current (partial) hour:
    the mean latency of that hour's non-failed probes (latency_sum_ms / (count - failures))
    rounded to 0.1; None for an hour without such probes."""

    uptime: float | None
    latency_ms: tuple[float | None, ...]


NO_PROBES = DaySummary(None, (None,) * HOURS)

# Per pair and UTC hour since the uptime window's start (now - 24 h, which falls inside the
# hour before the sparkline's first): probes, failures and the latency of those that did
# not fail. The hour before the first point counts toward uptime only.
_BY_HOUR = """
SELECT r.service_id, r.environment_id, date_trunc('hour', r.bucket, 'UTC') AS hour,
       SUM(r.count), SUM(r.failures), SUM(r.latency_sum_ms)
FROM health_rollup r
JOIN unnest(%s::bigint[], %s::bigint[]) AS p(service_id, environment_id)
  ON r.service_id = p.service_id AND r.environment_id = p.environment_id
WHERE r.bucket >= %s
GROUP BY 1, 2, 3
"""


def day_summaries(
    pairs: Iterable[tuple[int, int]], now: datetime | None = None
) -> dict[tuple[int, int], DaySummary]:
    """Each (service_id, environment_id) pair's last 24 h, in one query.

    `uptime` is `health.rollups.uptime(...)["24h"]`: round(100 * (n - f) / n, 3) over the
    probes since now - 24 h. `latency_ms` has 24 hourly points ending with the current
    (partial) hour, each the mean latency of that hour's probes that did not fail, rounded
    to 0.1 ms; None for an hour without such probes. A pair without rollups maps to
    `NO_PROBES`.
    """
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    now = now or timezone.now()
    first_hour = hour_of(now) - timedelta(hours=HOURS - 1)
    with connection.cursor() as cursor:
        cursor.execute(
            _BY_HOUR,
            [[s for s, _ in wanted], [e for _, e in wanted], now - UPTIME_WINDOWS["24h"]],
        )
        rows = cursor.fetchall()
    probes: dict[tuple[int, int], list[int]] = {}
    latency: dict[tuple[int, int], list[float | None]] = {}
    for service_id, environment_id, hour, count, failures, latency_sum in rows:
        pair = (service_id, environment_id)
        totals = probes.setdefault(pair, [0, 0])
        totals[0] += count
        totals[1] += failures
        index = int((hour - first_hour) / timedelta(hours=1))
        if 0 <= index < HOURS and count > failures:
            points = latency.setdefault(pair, [None] * HOURS)
            points[index] = round(latency_sum / (count - failures), 1)
    summaries = {}
    for pair in wanted:
        n, f = probes.get(pair, (0, 0))
        uptime = None if n == 0 else round(100.0 * (n - f) / n, 3)
        summaries[pair] = DaySummary(uptime, tuple(latency.get(pair, NO_PROBES.latency_ms)))
    return summaries
