"""Topology test fixtures: a small fleet that calls each other, and EdgeMinute rows as the
trace ingest writes them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from topology.models import LATENCY_BOUNDS_MS, EdgeMinute, NodeKind


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2 costs ~0.35 s per persona; these tests are not about passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def buckets_at(bound_ms: float, calls: int) -> list[int]:
    """A latency histogram with every call in the bucket whose upper bound is `bound_ms`."""
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    counts[LATENCY_BOUNDS_MS.index(bound_ms)] = calls
    return counts


def edge_minute(
    client: str,
    server: str,
    *,
    environment: Any = None,
    calls: int = 60,
    failures: int = 0,
    minutes_ago: int = 0,
    kind: str = NodeKind.SERVICE,
    bound_ms: float = 100,
    now: datetime | None = None,
) -> EdgeMinute:
    """One minute of calls between two nodes, as the ingest aggregates them."""
    minute = (now or timezone.now()).replace(second=0, microsecond=0) - timedelta(
        minutes=minutes_ago
    )
    return EdgeMinute.objects.create(
        minute=minute,
        environment=environment,
        client=client,
        server=server,
        server_kind=kind,
        calls=calls,
        failures=failures,
        latency_sum_ms=calls * bound_ms * 0.75,
        latency_buckets=buckets_at(bound_ms, calls),
    )
