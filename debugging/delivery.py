"""Config delivery to instances: `GET /api/v1/config/<service>/<environment>` with the long-poll
contract of Consul and OPA (ETag, If-None-Match, `wait`, 304 on timeout).

A held request parks on an asyncio event of its (service, environment); ONE Redis pub/sub
listener per process wakes the events when a config or a debug window changes. A change
reloads the snapshot from PostgreSQL once per process, whatever the number of watchers; each
watcher then only compares its ETag. So a watcher costs a coroutine and a socket, no thread,
no Redis connection and no query while it waits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from prometheus_client import Gauge

from catalog.choices import Scope
from catalog.models import ApiToken, Environment, Instance, Service
from controlplane import redis as redis_clients
from controlplane.metrics import REGISTRY
from debugging import config
from debugging.choices import WindowState
from debugging.models import DebugWindow

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 60.0
MAX_WAIT_SECONDS = 300.0
# Consul adds up to wait/16 so that watchers started together do not all return together.
JITTER_FRACTION = 1 / 16
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# Seconds between attempts to re-subscribe after Redis went away.
RESUBSCRIBE_SECONDS = 1.0
# A snapshot is reloaded at least this often even if no announcement came (a lost Redis
# message, a window that ended while Redis was down): the bound on a missed change.
SNAPSHOT_MAX_AGE_SECONDS = 30.0


WATCHERS = Gauge(
    "signalbox_config_watchers",
    "Config long-polls this web process is holding now.",
    registry=REGISTRY,
)


# Django gives each ASGI request its own thread for sync_to_async, and each thread its own
# PostgreSQL connection: 2,000 watchers re-authorizing at once would open 2,000 of them
# ("too many clients", seen in bench/config_fanout). The watchers' few queries (token,
# snapshot) run on this small pool instead: at most this many connections per process.
DB_THREADS = 4
_db = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="config-db")


def _with_connection(fn: Callable[..., T], *args: Any) -> T:
    close_old_connections()  # drop a connection the database closed or past CONN_MAX_AGE
    return fn(*args)


async def in_db(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(
        _db, partial(_with_connection, fn, *args)
    )


class BadWait(ValueError):
    pass


def parse_duration(raw: str) -> float:
    """Seconds of "30", "30s", "5m", "1500ms", "2h" (Go durations, as Consul takes them)."""
    found = _DURATION.match(raw.strip())
    if not found:
        raise BadWait(f"{raw!r} is not a duration: use seconds (30) or Go style (30s, 5m)")
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def parse_wait(raw: str | None) -> float:
    """`wait` as seconds, default 60 s, at most 300 s."""
    if raw is None or raw == "":
        return DEFAULT_WAIT_SECONDS
    seconds = parse_duration(raw)
    if seconds > MAX_WAIT_SECONDS:
        raise BadWait(f"{raw!r} is longer than the maximum of {MAX_WAIT_SECONDS:.0f}s (5m)")
    return seconds


@dataclass
class Snapshot:
    """What one (service, environment) delivers now, loaded once per change per process."""

    service_id: int
    team_id: int
    environment_id: int
    base: dict[str, Any]
    windows: list[DebugWindow]
    loaded_at: float = field(default_factory=time.monotonic)

    def overlay_for(self, instance_id: int | None, zone: str | None) -> list[dict[str, Any]]:
        if not self.windows:
            return []
        chosen = []
        for window in self.windows:
            if window.instance_id is not None:
                if window.instance_id == instance_id:
                    chosen.append(window)
            elif window.zone:
                if zone == window.zone:
                    chosen.append(window)
            else:
                chosen.append(window)
        # Newest last, so a narrower or newer window wins for the same logger.
        return [w.as_overlay() for w in sorted(chosen, key=lambda w: (w.opened_at, w.pk))]

    def answer(self, instance_id: int | None, zone: str | None) -> tuple[str, dict[str, Any]]:
        overlay = self.overlay_for(instance_id, zone)
        body = dict(self.base)
        levels = dict(body["log_levels"])
        for item in overlay:
            levels[item["logger"]] = item["level"]
        body["log_levels"] = levels
        body["configured_log_levels"] = self.base["log_levels"]
        body["debug_windows"] = overlay
        tag = str(self.base["version"])
        if overlay:
            digest = hashlib.sha256(json.dumps(overlay, sort_keys=True).encode()).hexdigest()
            tag += "-" + digest[:12]
        return f'"{tag}"', body


def load_snapshot(service_id: int, environment_id: int) -> Snapshot:
    service = Service.objects.get(pk=service_id)
    environment = Environment.objects.get(pk=environment_id)
    version = config.current(service, environment)
    base = {"service": service.slug, "environment": environment.slug, **config.document(version)}
    windows = list(
        DebugWindow.objects.filter(
            service_id=service_id, environment_id=environment_id, state=WindowState.OPEN
        )
    )
    return Snapshot(service_id, service.team_id, environment_id, base, windows)


class Topic:
    """The watchers of one (service, environment) in this process."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.snapshot: Snapshot | None = None
        self.loading = asyncio.Lock()
        self.generation = 0  # bumped by every wake

    def wake(self) -> None:
        self.generation += 1
        self.snapshot = None
        previous, self.changed = self.changed, asyncio.Event()
        previous.set()

    def _fresh(self) -> Snapshot | None:
        found = self.snapshot
        if found is not None and time.monotonic() - found.loaded_at <= SNAPSHOT_MAX_AGE_SECONDS:
            return found
        return None

    async def current(self, service_id: int, environment_id: int) -> Snapshot:
        # Without the lock while fresh: 2,000 woken watchers must not queue on it one by one.
        found = self._fresh()
        if found is not None:
            return found
        async with self.loading:
            found = self._fresh()
            if found is not None:
                return found
            generation = self.generation
            loaded = await in_db(load_snapshot, service_id, environment_id)
            # A wake while it loaded may mean it read the old rows: don't keep it (the
            # woken caller loops and loads again).
            if generation == self.generation:
                self.snapshot = loaded
            return loaded


class Hub:
    """One per event loop (uvicorn runs one per process): topics and the one listener."""

    def __init__(self) -> None:
        self.topics: weakref.WeakValueDictionary[str, Topic] = weakref.WeakValueDictionary()
        self.listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def topic(self, name: str) -> Topic:
        found = self.topics.get(name)
        if found is None:
            found = Topic()
            self.topics[name] = found
        return found

    async def start(self) -> None:
        if self.listener is None or self.listener.done():
            self.listener = asyncio.get_running_loop().create_task(self._listen())
        await self.subscribed.wait()

    async def _listen(self) -> None:
        while True:
            pubsub = None
            try:
                pubsub = redis_clients.subscriber().pubsub()
                await pubsub.psubscribe(config.CHANNEL_PREFIX + "*")
                self.subscribed.set()
                self._wake_all()  # anything missed while (re)connecting
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    name = message["channel"].decode()
                    found = self.topics.get(name)
                    if found is not None:
                        found.wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("config listener lost Redis; resubscribing", exc_info=True)
            finally:
                if pubsub is not None:
                    try:
                        await pubsub.aclose()
                    except Exception:
                        logger.debug("closing the config subscription failed", exc_info=True)
            # Watchers waiting meanwhile still answer when their wait runs out.
            self.subscribed.set()
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    def _wake_all(self) -> None:
        for found in list(self.topics.values()):
            found.wake()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found


def _error(status: int, message: str, fields: dict[str, list[str]] | None = None) -> JsonResponse:
    codes = {400: "invalid", 401: "not_authenticated", 403: "permission_denied", 404: "not_found"}
    response = JsonResponse(
        {
            "error": {
                "status": status,
                "code": codes[status],
                "message": message,
                "fields": fields or {},
            }
        },
        status=status,
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="signalbox"'
    return response


@dataclass(frozen=True)
class Watch:
    service_id: int
    team_id: int
    environment_id: int
    instance_id: int | None
    zone: str | None


def _authorize(
    header: str, service_slug: str, environment_slug: str, instance: str | None
) -> Watch | JsonResponse:
    """Who may watch: a token of the service's team with the `report` scope (bound to this
    service, if bound at all). It is what instances already hold to register and report."""
    keyword, _, value = header.partition(" ")
    if keyword.lower() not in {"bearer", "token"} or not value.strip():
        return _error(401, "send Authorization: Bearer <a report token of the service's team>")
    token = ApiToken.find(value.strip())
    if token is None:
        return _error(401, "token is unknown, revoked or expired")
    service = Service.objects.filter(slug=service_slug).first()
    environment = Environment.objects.filter(slug=environment_slug).first()
    if service is None or environment is None:
        return _error(404, f"no service {service_slug!r} in environment {environment_slug!r}")
    if not token.has_scope(Scope.REPORT):
        return _error(403, "config (with its secrets) is delivered to `report` tokens only")
    if token.team_id != service.team_id or token.service_id not in (None, service.pk):
        return _error(403, f"this token may not read the config of {service.slug}")
    token.touch()
    instance_id, zone = None, None
    if instance:
        if not instance.isdigit():
            return _error(400, "instance must be an instance id", {"instance": ["not an id"]})
        found = (
            Instance.objects.filter(pk=int(instance), service=service, environment=environment)
            .values_list("pk", "zone")
            .first()
        )
        if found is None:
            return _error(
                400,
                f"instance {instance} is not an instance of {service.slug} in {environment.slug}",
                {"instance": ["unknown instance"]},
            )
        instance_id, zone = found
    return Watch(service.pk, service.team_id, environment.pk, instance_id, zone)


# {hash of (token, service, environment, instance): (Watch, good until)}: a watcher
# re-polling right after a change must not cost a token lookup (and 2,000 of them a queue of
# queries); a revoked token stops being served within this many seconds.
AUTHORIZED_SECONDS = 30.0
_authorized: dict[str, tuple[Watch, float]] = {}


async def authorize(
    header: str, service: str, environment: str, instance: str | None
) -> Watch | JsonResponse:
    key = hashlib.sha256(f"{header}\n{service}\n{environment}\n{instance}".encode()).hexdigest()
    now = time.monotonic()
    found = _authorized.get(key)
    if found is not None and found[1] > now:
        return found[0]
    decided = await in_db(_authorize, header, service, environment, instance)
    if isinstance(decided, Watch):
        if len(_authorized) > 50_000:  # bounded: forget everything rather than grow
            _authorized.clear()
        _authorized[key] = (decided, now + AUTHORIZED_SECONDS)
    return decided


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


async def answer(
    query: Mapping[str, str], headers: Mapping[str, str], service: str, environment: str
) -> tuple[int, dict[str, str], bytes]:
    """The long-poll itself, shared by the Django view and the ASGI fast path: status,
    headers and body. `headers` are lower-cased names."""
    try:
        wait = parse_wait(query.get("wait"))
    except BadWait as exc:
        return _as_parts(_error(400, str(exc), {"wait": [str(exc)]}))
    instance = query.get("instance") or query.get("index")
    decided = await authorize(headers.get("authorization", ""), service, environment, instance)
    if isinstance(decided, HttpResponse):
        return _as_parts(decided)
    known = _etags(headers.get("if-none-match", ""))
    the_hub = hub()
    await the_hub.start()
    topic = the_hub.topic(config.channel(decided.service_id, decided.environment_id))
    deadline = time.monotonic() + wait + random.uniform(0, wait * JITTER_FRACTION)
    while True:
        changed = topic.changed  # taken before reading, so a change meanwhile is not missed
        snapshot = await topic.current(decided.service_id, decided.environment_id)
        tag, body = snapshot.answer(decided.instance_id, decided.zone)
        status, content = 200, b""
        if tag not in known:
            content = json.dumps(body).encode()
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = 304
            break
        WATCHERS.inc()
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            continue
        finally:
            WATCHERS.dec()
    sent = {"ETag": tag, "X-Signalbox-Index": tag.strip('"'), "Cache-Control": "no-store"}
    if status == 200:
        sent["Content-Type"] = "application/json"
    return status, sent, content


def _as_parts(response: HttpResponse) -> tuple[int, dict[str, str], bytes]:
    return response.status_code, dict(response.items()), response.content


async def watch_config(request: HttpRequest, service: str, environment: str) -> HttpResponse:
    """The instance-facing config: 200 with the document and its ETag, or, with a matching
    If-None-Match, held until it changes (200) or `wait` (+ jitter) passes (304). Under
    uvicorn, debugging.watch_asgi answers this URL in front of Django with the same code."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    headers = {k.lower(): v for k, v in request.headers.items()}
    status, sent, content = await answer(request.GET, headers, service, environment)
    response = HttpResponse(content, status=status)
    for name, value in sent.items():
        response[name] = value
    return response
