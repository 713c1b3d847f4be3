"""/healthz and /readyz: the control plane's own health, in application/health+json."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

HEALTH_JSON = "application/health+json"


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse(
        {"status": "pass", "description": "signalbox web"}, content_type=HEALTH_JSON
    )


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis(url: str) -> Callable[[], None]:
    def check() -> None:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    return check


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, Redis (cache and live layer) and the Celery broker answer."""
    components = {
        "postgresql:connection": _check_database,
        "redis:connection": _check_redis(settings.REDIS_URL),
        "broker:connection": _check_redis(settings.CELERY_BROKER_URL),
    }
    checks: dict[str, list[dict[str, Any]]] = {}
    failed = False
    for name, check in components.items():
        started = time.perf_counter()
        entry: dict[str, Any] = {"componentType": "datastore", "time": timezone.now().isoformat()}
        try:
            check()
            entry["status"] = "pass"
        except Exception as exc:
            failed = True
            entry["status"] = "fail"
            entry["output"] = f"{type(exc).__name__}: {exc}"[:300]
        entry["observedValue"] = round((time.perf_counter() - started) * 1000, 1)
        entry["observedUnit"] = "ms"
        checks[name] = [entry]
    body = {"status": "fail" if failed else "pass", "checks": checks}
    return JsonResponse(body, status=503 if failed else 200, content_type=HEALTH_JSON)
