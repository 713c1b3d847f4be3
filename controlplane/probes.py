"""/healthz and /readyz: the control plane's own health, in application/health+json."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from kombu import Connection

from controlplane import redis as redis_clients

HEALTH_JSON = "application/health+json"
# A readiness probe must answer before the orchestrator's own timeout (Kubernetes: 1 s by
# default, commonly raised to 3-5 s): each dependency gets this long to answer.
CHECK_TIMEOUT_SECONDS = 1.0


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a database outage does not
    get every web process restarted."""
    return JsonResponse(
        {"status": "pass", "description": "signalbox web", "serviceId": "signalbox"},
        content_type=HEALTH_JSON,
    )


def _check_database() -> None:
    # A database that does not answer connects slowly only if DATABASE_URL lacks
    # ?connect_timeout=N (docs/operations.md); a running one answers this at once.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis(url: str) -> Callable[[], None]:
    def check() -> None:
        redis_clients.client(url, timeout=CHECK_TIMEOUT_SECONDS).ping()

    return check


def _check_broker(url: str) -> Callable[[], None]:
    if urlparse(url).scheme in {"redis", "rediss", "unix"}:
        return _check_redis(url)

    def check() -> None:  # another Celery transport (RabbitMQ, SQS): ask kombu
        with Connection(url, connect_timeout=CHECK_TIMEOUT_SECONDS) as broker:
            broker.ensure_connection(max_retries=1, timeout=int(CHECK_TIMEOUT_SECONDS) or 1)

    return check


def readiness() -> tuple[bool, dict[str, Any]]:
    """(ready, health+json body): database, Redis (cache and live layer) and the broker."""
    components: dict[str, tuple[str, Callable[[], None]]] = {
        "postgresql:responseTime": ("datastore", _check_database),
        "redis:responseTime": ("datastore", _check_redis(settings.REDIS_URL)),
        "broker:responseTime": ("component", _check_broker(settings.CELERY_BROKER_URL)),
    }
    checks: dict[str, list[dict[str, Any]]] = {}
    ready = True
    for name, (kind, check) in components.items():
        started = time.perf_counter()
        entry: dict[str, Any] = {"componentType": kind, "time": timezone.now().isoformat()}
        try:
            check()
            entry["status"] = "pass"
        except Exception as exc:
            ready = False
            entry["status"] = "fail"
            entry["output"] = f"{type(exc).__name__}: {exc}"[:300]
        entry["observedValue"] = round((time.perf_counter() - started) * 1000, 1)
        entry["observedUnit"] = "ms"
        checks[name] = [entry]
    body = {
        "status": "pass" if ready else "fail",
        "description": "signalbox web: database, Redis and broker",
        "serviceId": "signalbox",
        "checks": checks,
    }
    return ready, body


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency answers, 503 naming the one that did not."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503, content_type=HEALTH_JSON)
