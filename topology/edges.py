"""Edges seen in traces, summed over a time range (what the dependency map draws)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Max, Sum

from catalog.models import Environment
from topology.models import LATENCY_BOUNDS_MS, EdgeMinute


def quantile_ms(buckets: list[int], q: float) -> float | None:
    """The q-quantile of a histogram with LATENCY_BOUNDS_MS upper bounds, interpolated
    linearly inside its bucket (as Prometheus' histogram_quantile does); None if empty.
    In the last (open) bucket it is the last bound: all that is known is 'more than that'."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i >= len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            lower = LATENCY_BOUNDS_MS[i - 1] if i > 0 else 0.0
            upper = LATENCY_BOUNDS_MS[i]
            return float(lower + (upper - lower) * (rank - seen) / count)
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])


def recent_edges(
    since: datetime, environment: Environment | int | str | None = None
) -> list[dict[str, Any]]:
    """EdgeMinute rows from `since` on, summed per (client, server, connection_type).

    `environment`: an Environment, its id or slug; None sums over all environments.
    Each edge: client, server, server_kind, connection_type, calls, failures, error_rate
    (0..1), latency_avg_ms, p50_ms, p99_ms (None without calls), sorted by client, server.
    """
    rows = EdgeMinute.objects.filter(minute__gte=since.replace(second=0, microsecond=0))
    if isinstance(environment, Environment):
        rows = rows.filter(environment=environment)
    elif isinstance(environment, int):
        rows = rows.filter(environment_id=environment)
    elif isinstance(environment, str):
        rows = rows.filter(environment__slug=environment)
    totals = {
        (r["client"], r["server"], r["connection_type"]): r
        for r in rows.values("client", "server", "connection_type").annotate(
            calls_sum=Sum("calls"),
            failures_sum=Sum("failures"),
            latency_sum=Sum("latency_sum_ms"),
            kind=Max("server_kind"),
        )
    }
    buckets: dict[tuple[str, str, str], list[int]] = {}
    width = len(LATENCY_BOUNDS_MS) + 1
    for client, server, connection_type, counts in rows.values_list(
        "client", "server", "connection_type", "latency_buckets"
    ):
        summed = buckets.setdefault((client, server, connection_type), [0] * width)
        for i, count in enumerate(counts[:width]):
            summed[i] += count
    edges = []
    for key in sorted(totals):
        row = totals[key]
        calls = int(row["calls_sum"] or 0)
        failures = int(row["failures_sum"] or 0)
        histogram = buckets.get(key, [0] * width)
        edges.append(
            {
                "client": key[0],
                "server": key[1],
                "server_kind": row["kind"],
                "connection_type": key[2],
                "calls": calls,
                "failures": failures,
                "error_rate": failures / calls if calls else 0.0,
                "latency_avg_ms": (row["latency_sum"] or 0.0) / calls if calls else None,
                "p50_ms": quantile_ms(histogram, 0.5),
                "p99_ms": quantile_ms(histogram, 0.99),
            }
        )
    return edges
