"""Leak or load? From the instances' memory over their lifetime and the group's load over the
same minutes, a verdict an on-call engineer can act on: "RSS grows 0.7 MB/min per instance
while load is flat: looks like a leak" (remedy: a rolling restart, scheduled for a slow
leak), or "memory follows load", or too little data to say.

The inputs are the per-minute averages instances report (POST /api/v1/metrics: memory_mb,
cpu_percent): each live instance's memory slope over its own lifetime (least squares), the
median of those, and the load's relative change over the same window."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from scaling import inputs
from scaling.choices import REPORTED_NAMES, Source
from scaling.models import MetricMinute, ScalingGroup

MEMORY = REPORTED_NAMES[Source.MEMORY]
LOAD = REPORTED_NAMES[Source.CPU]
# A slope this steep (MB per minute per instance) is worth a verdict.
LEAK_MB_PER_MINUTE = 0.2
# Load counts as flat when it moved less than this (relative) over the window.
FLAT_LOAD = 0.15
# At least this many minutes of an instance's memory before its slope is believed.
MIN_MINUTES = 10
LOOKBACK = timedelta(hours=6)


@dataclass(frozen=True)
class Verdict:
    kind: str  # "leak", "load", "steady", "unknown"
    text: str
    mb_per_minute: float | None = None
    load_change: float | None = None
    instances: int = 0

    @property
    def leak(self) -> bool:
        return self.kind == "leak"


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def verdict(group: ScalingGroup, now: datetime | None = None) -> Verdict:
    now = now or timezone.now()
    since = now - LOOKBACK
    live = list(inputs.members(group))
    rows = MetricMinute.objects.filter(
        instance__in=live, name__in=(MEMORY, LOAD), minute__gte=since
    ).values_list("instance_id", "name", "minute", "total", "count")
    memory: dict[int, list[tuple[float, float]]] = {}
    load_by_minute: dict[datetime, list[float]] = {}
    for instance_id, name, minute, total, count in rows:
        if not count:
            continue
        value = total / count
        if name == MEMORY:
            memory.setdefault(instance_id, []).append((minute.timestamp() / 60, value))
        else:
            load_by_minute.setdefault(minute, []).append(value)
    slopes = [slope(points) for points in memory.values() if len(points) >= MIN_MINUTES]
    if not slopes:
        return Verdict(
            "unknown",
            f"not enough memory readings to tell a leak from load (need {MIN_MINUTES} "
            "minutes of memory_mb per instance)",
        )
    per_minute = statistics.median(slopes)
    change = _relative_change(load_by_minute)
    growing = per_minute >= LEAK_MB_PER_MINUTE
    where = f"{len(slopes)} instance(s)"
    if growing and (change is None or abs(change) < FLAT_LOAD):
        load_words = "load is flat" if change is not None else "no load was reported"
        return Verdict(
            "leak",
            f"RSS grows {per_minute:.1f} MB/min per instance while {load_words} ({where}): "
            "looks like a leak. Remedy: a rolling restart now, and restarts every few hours "
            "until it is fixed",
            per_minute,
            change,
            len(slopes),
        )
    if growing and change is not None:
        return Verdict(
            "load",
            f"RSS grows {per_minute:.1f} MB/min per instance, and load grew "
            f"{change * 100:+.0f} % over the same time ({where}): memory follows load",
            per_minute,
            change,
            len(slopes),
        )
    return Verdict(
        "steady",
        f"memory is steady ({per_minute:+.2f} MB/min per instance, {where}): no sign of a leak",
        per_minute,
        change,
        len(slopes),
    )


def _relative_change(by_minute: dict[datetime, list[float]]) -> float | None:
    """How much the group's mean load moved from the first to the last third of the window."""
    if len(by_minute) < 6:
        return None
    series = [statistics.mean(v) for _, v in sorted(by_minute.items())]
    third = max(1, len(series) // 3)
    before, after = statistics.mean(series[:third]), statistics.mean(series[-third:])
    if before <= 0:
        return None if after <= 0 else 1.0
    return (after - before) / before
