"""The one place Redis clients are made: a pool per URL and process, an async client per loop.

Every Redis user of the control plane (live fragments, coalescing windows, the routers'
breakers, circuit tiles, metrics, readiness) asks here, so timeouts are the same everywhere
and a process opens one pool per Redis, not one per caller.
"""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

# Seconds. A Redis that does not answer within this is down for our purposes: every caller
# is either best-effort (live updates) or retried by its own loop (breakers, claims).
TIMEOUT_SECONDS = 2.0

# One client per URL and timeout, on its pool: making a redis.Redis (its response callbacks)
# cost ~0.8 ms of CPU per call, paid on every rollout step (bench/RESULTS.md, rollouts at
# 1,000). A client is safe to share between threads; its pool notices a fork.
_clients: dict[tuple[str, float], redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def client(url: str | None = None, *, timeout: float = TIMEOUT_SECONDS) -> redis.Redis:
    """A client on this process's pool for `url` (settings.REDIS_URL by default).

    redis-py's pools notice a fork and start afresh in the child, so a pool made before
    Celery forks its workers is safe to share."""
    key = (url or settings.REDIS_URL, timeout)
    found = _clients.get(key)
    if found is None:
        pool = redis.ConnectionPool.from_url(
            key[0], socket_timeout=timeout, socket_connect_timeout=timeout
        )
        found = _clients[key] = redis.Redis(connection_pool=pool)
    return found


def async_client() -> aioredis.Redis:
    """One async client (and pool) per event loop: uvicorn has one, each async test its own."""
    loop = asyncio.get_running_loop()
    found = _async_clients.get(loop)
    if found is None:
        found = _async_clients[loop] = aioredis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
        )
    return found


def subscriber() -> aioredis.Redis:
    """A client of its own for a pub/sub connection: it waits for messages without a read
    timeout, so it must not share a pool with request/response callers."""
    return aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=TIMEOUT_SECONDS)
