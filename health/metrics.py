"""Health's part of /metrics: each service's state, instance checks by status, and the
probes' latency and lateness (histograms the workers keep in Redis). Registered in
HealthConfig.ready; docs/operations.md ("Metrics") lists the label sets."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import redis
from django.db.models import Count
from prometheus_client import Metric

from controlplane import metrics
from health.choices import CheckStatus
from health.models import InstanceCheck, ServiceHealth

logger = logging.getLogger(__name__)

PROBE_DURATION = metrics.SharedHistogram(
    "signalbox_probe_duration_seconds",
    "How long each health probe took, by check kind and result, across every worker.",
    ["kind", "result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PROBE_LATENESS = metrics.SharedHistogram(
    "signalbox_probe_lateness_seconds",
    "How long after its due time each probe started (workers falling behind), every worker.",
    [],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


def record_probes(results: Iterable[tuple[str, str, float, float]]) -> None:
    """Count a batch's probes: (kind, result, latency ms, lateness s), one Redis round trip
    per histogram. Losing these counts never fails the batch: the results are in the rows."""
    done = list(results)
    try:
        PROBE_DURATION.observe_many(((kind, result), ms / 1000) for kind, result, ms, _ in done)
        PROBE_LATENESS.observe_many(((), max(late, 0.0)) for *_, late in done)
    except redis.RedisError:
        logger.warning("metrics: could not count %d probes in Redis", len(done), exc_info=True)


def service_health() -> Iterator[Metric]:
    """Two queries: one row per service and environment, one count per check status."""
    state = metrics.gauge(
        "signalbox_service_health",
        "1 for each service's current health in each environment (healthy, degraded, down,"
        " unknown); one series per service and environment.",
        ["team", "service", "environment", "status"],
    )
    rows = ServiceHealth.objects.values_list(
        "service__team__slug", "service__slug", "environment__slug", "status"
    ).order_by("service__slug", "environment__slug")
    for team, service, environment, status in rows:
        state.add_metric([team, service, environment, status], 1)
    yield state
    checks = metrics.gauge(
        "signalbox_instance_checks",
        "Instance health checks in each status, per environment.",
        ["environment", "status"],
    )
    counts = (
        InstanceCheck.objects.values_list("instance__environment__slug", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    seen = {(environment, status): n for environment, status, n in counts}
    for environment in sorted({environment for environment, _ in seen}):
        for status in CheckStatus.values:  # zeros too: a graph of "fail" starts at 0
            checks.add_metric([environment, status], seen.get((environment, status), 0))
    yield checks


def probe_histograms() -> Iterator[Metric]:
    yield PROBE_DURATION.collect()
    yield PROBE_LATENESS.collect()


def register() -> None:
    metrics.register("health", service_health)
    metrics.register("probes", probe_histograms)
