"""Circuit settings: Django settings win, then environment variables, then defaults."""

from __future__ import annotations

from django.conf import settings

from controlplane.env import env_int


def _setting(name: str, default: int, minimum: int) -> int:
    value = getattr(settings, name, None)
    return int(value) if value is not None else env_int(name, default, minimum=minimum)


def stale_seconds() -> int:
    """An instance silent for this long is stale: its last state is no longer shown as current."""
    return _setting("SIGNALBOX_CIRCUITS_STALE_SECONDS", 60, 5)


def history_days() -> int:
    """Per-minute samples and transitions older than this are pruned."""
    return _setting("SIGNALBOX_CIRCUITS_HISTORY_DAYS", 14, 1)


def scrape_interval_seconds() -> int:
    """Default interval for scrape targets derived from instance labels."""
    return _setting("SIGNALBOX_CIRCUITS_SCRAPE_INTERVAL", 15, 2)


def max_future_skew_seconds() -> int:
    """Reports dated further ahead than this are refused: they would shadow every later report."""
    return _setting("SIGNALBOX_CIRCUITS_MAX_CLOCK_SKEW", 300, 1)
