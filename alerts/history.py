"""A service's availability over SLO windows, read from health's per-minute probe rollups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from health.services import availability_counts


def window_counts(
    service_id: int, environment_id: int, now: datetime
) -> Callable[[int], tuple[int, int]]:
    """A function window_seconds -> (good, total) probes in the window ending now.

    Each window is read at most once (the same window can appear in several pairs), and
    only when asked: a pair whose long window is not burning never reads its short one.
    """
    read: dict[int, tuple[int, int]] = {}

    def counts(window_seconds: int) -> tuple[int, int]:
        if window_seconds not in read:
            since = now - timedelta(seconds=window_seconds)
            read[window_seconds] = availability_counts(service_id, environment_id, since)
        return read[window_seconds]

    return counts
