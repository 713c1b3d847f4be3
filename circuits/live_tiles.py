"""Coalesced live updates of circuits whose numbers moved without a state change.

A state change is an event and is pushed at once by the spine. Rates and volumes change
with every report, so ingest only marks the circuit dirty (one Redis SADD per batch) and
a beat task pushes each dirty circuit's tile once per tick: one update per tile per
window, however many reports arrived in it.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings

from controlplane import redis as redis_clients

logger = logging.getLogger(__name__)


def _dirty_key() -> str:
    # Per database: test runs and benchmarks that share one Redis keep their own sets.
    return f"signalbox:circuits:dirty:{settings.DATABASES['default']['NAME']}"


def _client() -> redis.Redis:
    return redis_clients.client()


def mark_dirty(circuit_ids: list[int]) -> None:
    """Remember these circuits need a fresh tile; never fails the caller (live is best-effort)."""
    if not circuit_ids:
        return
    try:
        _client().sadd(_dirty_key(), *circuit_ids)
    except redis.RedisError:
        logger.warning("could not mark %d circuits for a live update", len(circuit_ids))


def take_dirty(limit: int) -> list[int]:
    """Take up to `limit` dirty circuits; each is taken by one flusher only (SPOP)."""
    try:
        taken: Any = _client().spop(_dirty_key(), limit) or []
    except redis.RedisError:
        logger.warning("could not read the circuits to update live")
        return []
    return sorted(int(x) for x in taken)
