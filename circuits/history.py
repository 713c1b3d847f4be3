"""A circuit's history: per-minute samples for charts, transitions for the timeline, pruning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from circuits.models import Circuit, CircuitSample, CircuitTransition


def chart_series(circuit: Circuit, *, hours: int) -> dict[str, list[Any]]:
    """Columns for uPlot: epoch seconds, failure %, calls, open instances (one query)."""
    since = timezone.now() - timedelta(hours=hours)
    rows = CircuitSample.objects.filter(circuit=circuit, bucket__gte=since).order_by("bucket")
    series: dict[str, list[Any]] = {
        "t": [],
        "failure_rate": [],
        "slow_call_rate": [],
        "call_volume": [],
        "open_instances": [],
    }
    for sample in rows.values_list(
        "bucket", "failure_rate", "slow_call_rate", "call_volume", "open_instances"
    ):
        bucket, failure_rate, slow_call_rate, call_volume, open_instances = sample
        series["t"].append(int(bucket.timestamp()))
        series["failure_rate"].append(failure_rate)
        series["slow_call_rate"].append(slow_call_rate)
        series["call_volume"].append(call_volume)
        series["open_instances"].append(open_instances)
    return series


def prune() -> dict[str, int]:
    """Drop samples and transitions past the retention, and instance states long gone quiet."""
    now = timezone.now()
    cutoff = now - timedelta(days=settings.SIGNALBOX_CIRCUITS_HISTORY_DAYS)
    samples, _ = CircuitSample.objects.filter(bucket__lt=cutoff).delete()
    transitions, _ = CircuitTransition.objects.filter(at__lt=cutoff).delete()
    return {"samples": samples, "transitions": transitions}
