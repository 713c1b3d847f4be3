"""A service's availability over a window, from its health history (the spine's record of
`health.service.changed`): seconds up (healthy or degraded) and seconds known."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from controlplane.models import Event

UP_STATES = ("healthy", "degraded")
DOWN_STATES = ("down",)

Change = tuple[datetime, str]


def seconds_up(
    initial: str | None, changes: Sequence[Change], start: datetime, end: datetime
) -> tuple[float, float]:
    """(good, total) seconds in [start, end): time in an up state is good, time down is bad,
    time unknown (no data, or state 'unknown') counts for neither."""
    good = total = 0.0
    state = initial
    cursor = start
    for at, new_state in [*changes, (end, "")]:
        if at <= start:
            state = new_state
            continue
        stop = min(at, end)
        span = (stop - cursor).total_seconds()
        if span > 0 and state in UP_STATES:
            good += span
            total += span
        elif span > 0 and state in DOWN_STATES:
            total += span
        cursor = stop
        state = new_state
        if at >= end:
            break
    return good, total


def availability_counts(
    service_id: int, environment_id: int, longest_seconds: int, now: datetime
) -> Callable[[int], tuple[float, float]] | None:
    """A function window_seconds -> (good, total) for windows ending now, or None when the
    service has no health history here at all."""
    start = now - timedelta(seconds=longest_seconds)
    events = Event.objects.filter(
        action="health.service.changed",
        subject_type="catalog.service",
        subject_id=str(service_id),
        environment_id=environment_id,
    )
    before = events.filter(created_at__lt=start).order_by("-created_at").first()
    changes: list[Change] = [
        (at, str(payload.get("to", "")))
        for at, payload in events.filter(created_at__gte=start, created_at__lte=now)
        .order_by("created_at", "id")
        .values_list("created_at", "payload")
    ]
    if before is None and not changes:
        return None
    initial = str(before.payload.get("to", "")) if before is not None else None

    def counts(window_seconds: int) -> tuple[float, float]:
        window_start = now - timedelta(seconds=window_seconds)
        prior = [c for c in changes if c[0] <= window_start]
        state = prior[-1][1] if prior else initial
        later = [c for c in changes if c[0] > window_start]
        return seconds_up(state, later, window_start, now)

    return counts
