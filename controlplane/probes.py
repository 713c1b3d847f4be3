"""/healthz and /readyz: the control plane's own health, in application/health+json."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlparse

import psycopg
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AnonymousUser
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from kombu import Connection

from controlplane import redis as redis_clients

HEALTH_JSON = "application/health+json"
# A readiness probe must answer before the orchestrator's own timeout (Kubernetes: 1 s by
# default, commonly raised to 3-5 s): the checks run side by side and each gets this long;
# one that has not answered by then is down, whatever its driver's own timeout would say.
CHECK_TIMEOUT_SECONDS = 1.0
# libpq counts connect_timeout in whole seconds and treats 1 as 2; the deadline above still
# answers at 1 s, the connection attempt just ends a second later in its thread.
_DATABASE_CONNECT_TIMEOUT = 2
# Checks that outlive their deadline (a database dropping packets) keep a thread until their
# driver gives up; a few threads are enough for every probe to answer on time meanwhile.
_checks = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a database outage does not
    get every web process restarted."""
    return JsonResponse(
        {"status": "pass", "description": "signalbox web", "serviceId": "signalbox"},
        content_type=HEALTH_JSON,
    )


def _connect() -> psycopg.Connection[Any]:
    # A connection of its own rather than the request's: it proves a new connection can be
    # made (what a pool needs after PostgreSQL restarted) and its thread keeps nothing open.
    database = connections["default"]
    params = database.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["connect_timeout"] = _DATABASE_CONNECT_TIMEOUT
    return psycopg.connect(**params, autocommit=True)


def _check_database() -> None:
    with _connect() as conn:
        conn.execute("SELECT 1")


class NotChecked(Exception):
    """A check that could not be made because another one failed (reported as `warn`)."""


@functools.cache
def _shipped_migrations() -> frozenset[tuple[str, str]]:
    """Every migration of this code, squashed ones in place of what they replace (read
    from disk once: the code does not change while the process runs)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def _check_migrations() -> None:
    """Every migration this code ships is applied: a web process started before `migrate`
    finished (or against another database) would fail on the first missing column."""
    try:
        with _connect() as conn:
            applied = set(conn.execute("SELECT app, name FROM django_migrations").fetchall())
    except psycopg.OperationalError as exc:
        raise NotChecked("not checked: the database cannot be reached") from exc
    except psycopg.errors.UndefinedTable:
        applied = set()  # an empty database: nothing migrated yet
    missing = sorted(_shipped_migrations() - applied)
    if missing:
        names = [f"{app}.{name}" for app, name in missing]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise RuntimeError(f"{len(names)} unapplied: {shown}; run `manage.py migrate`")


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


def _check_static_manifest() -> None:
    """Production storage names every static file by its hash from the manifest that
    `collectstatic` wrote; this process read it when it started. Without it (collectstatic
    not run with the production settings, or a volume mounted over STATIC_ROOT) every page
    answers 500. Development storage serves files as they are and needs no manifest."""
    storage = staticfiles_storage
    if not isinstance(storage, ManifestFilesMixin):
        return
    if not storage.hashed_files:
        raise RuntimeError(
            f"no static manifest ({storage.manifest_name}) in {settings.STATIC_ROOT} when this "
            "process started; run `manage.py collectstatic` with SIGNALBOX_ENV=production"
        )
    missing = [name for name in storage.hashed_files.values() if not storage.exists(name)]
    if missing:
        raise RuntimeError(
            f"{len(missing)} files of the static manifest are missing from "
            f"{settings.STATIC_ROOT}, e.g. {missing[0]}; run `manage.py collectstatic` again"
        )


def _check_template() -> None:
    """The login page renders: templates, their tags and every static URL they name."""
    request = HttpRequest()
    request.META = {"SERVER_NAME": "readyz", "SERVER_PORT": "80"}
    request.user = AnonymousUser()
    render_to_string("registration/login.html", {"form": AuthenticationForm()}, request=request)


def readiness() -> tuple[bool, dict[str, Any]]:
    """(ready, health+json body): database, Redis (cache and live layer), the broker, the
    migrations, the static manifest and a template, checked side by side, each within
    CHECK_TIMEOUT_SECONDS."""
    components: dict[str, tuple[str, Callable[[], None]]] = {
        "postgresql:responseTime": ("datastore", _check_database),
        "redis:responseTime": ("datastore", _check_redis(settings.REDIS_URL)),
        "broker:responseTime": ("component", _check_broker(settings.CELERY_BROKER_URL)),
        "migrations:applied": ("datastore", _check_migrations),
        "staticfiles:manifest": ("component", _check_static_manifest),
        "templates:render": ("component", _check_template),
    }
    at = timezone.now().isoformat()
    started = time.perf_counter()
    running = {name: _checks.submit(_timed, check) for name, (_, check) in components.items()}
    deadline = started + CHECK_TIMEOUT_SECONDS
    checks: dict[str, list[dict[str, Any]]] = {}
    down: list[str] = []
    for name, (kind, _) in components.items():
        entry: dict[str, Any] = {"componentType": kind, "time": at}
        try:
            elapsed, status, output = running[name].result(
                timeout=max(deadline - time.perf_counter(), 0)
            )
        except FutureTimeout:
            elapsed, status = CHECK_TIMEOUT_SECONDS, "fail"
            output = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        entry["status"] = status
        if output:
            entry["output"] = output
        if status == "fail":
            down.append(name.partition(":")[0])
        entry["observedValue"] = round(elapsed * 1000, 1)
        entry["observedUnit"] = "ms"
        checks[name] = [entry]
    body: dict[str, Any] = {
        "status": "fail" if down else "pass",
        "description": "signalbox web: database, Redis, broker, migrations, static, templates",
        "serviceId": "signalbox",
        "checks": checks,
    }
    if down:
        body["output"] = "down: " + ", ".join(down)
    return not down, body


def _timed(check: Callable[[], None]) -> tuple[float, str, str | None]:
    """(seconds taken, pass/warn/fail, None or why): what one check of `readiness` reports.
    `warn` is a check that another one's failure kept from being made."""
    started = time.perf_counter()
    try:
        check()
    except NotChecked as exc:
        return time.perf_counter() - started, "warn", str(exc)
    except Exception as exc:
        return time.perf_counter() - started, "fail", f"{type(exc).__name__}: {exc}"[:300]
    return time.perf_counter() - started, "pass", None


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency answers, 503 naming the ones that did not."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503, content_type=HEALTH_JSON)
