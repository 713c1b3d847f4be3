"""The heartbeat ping's fast path: a small ASGI app in front of Django that records pings."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import get_script_prefix
from django.core.signals import setting_changed
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.urls import get_resolver
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from controlplane.metrics import LATENCY, REQUESTS
from health import heartbeats
from health.choices import PingKind

logger = logging.getLogger(__name__)

# As django-stubs types ASGIHandler.__call__, so Django's handler is one of these apps.
Message = Mapping[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The fast path stands in for Django's whole middleware chain, so it knows what each of
# these does to a ping. Any other middleware turns the fast path off (with a warning) until
# someone checks what it would do to a ping and adds it here.
ANSWER_HEADER_MIDDLEWARE = (  # their process_response runs on the ping's answer, as in Django
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
PASSIVE_MIDDLEWARE = (  # nothing they do shows in a ping's answer, or we do it here
    "controlplane.static_files.StaticFilesMiddleware",  # static files only (WhiteNoise)
    "controlplane.metrics.RequestMetricsMiddleware",  # counted here under the same labels
    "django.contrib.sessions.middleware.SessionMiddleware",  # the view reads no session
    "django.middleware.csrf.CsrfViewMiddleware",  # DRF views are csrf-exempt
    "django.contrib.auth.middleware.AuthenticationMiddleware",  # lazy; pings are anonymous
    "django.contrib.messages.middleware.MessageMiddleware",  # no messages
    "django_htmx.middleware.HtmxMiddleware",  # a request attribute only
    "axes.middleware.AxesMiddleware",  # answers only a failed login (pings never log in)
)
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # Django's <uuid:>
_VIEW_NAMES = {  # the URL names RequestMetricsMiddleware labels the Django view's requests with
    None: "heartbeat-ping",
    "start": "heartbeat-ping-start",
    "fail": "heartbeat-ping-fail",
    "log": "heartbeat-ping-log",
    "exit": "heartbeat-ping-exit",
}


@dataclass(frozen=True)
class _Ping:
    """A request the fast path will answer itself, once the body is read."""

    key: uuid.UUID
    kind: str
    exit_code: int | None
    view_name: str
    length: int
    secure: bool
    user_agent: str


class _Rules:
    """What Django would check and add for a ping under the current settings."""

    def __init__(self) -> None:
        self.enabled = _fast_path_stands_in_for_django()
        zero = "00000000-0000-0000-0000-000000000000"
        prefix = "/" + get_resolver().reverse("heartbeat-ping", key=zero).removesuffix(zero)
        self.path = re.compile(
            re.escape(prefix) + f"(?P<key>{_UUID})(?:/(?P<suffix>start|fail|log|[0-9]+))?"
        )
        self.allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not self.allowed_hosts:
            self.allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as HttpRequest.get_host
        self.host_header = b"x-forwarded-host" if settings.USE_X_FORWARDED_HOST else b"host"
        self.proxy_ssl: tuple[bytes, str] | None = None
        if settings.SECURE_PROXY_SSL_HEADER:
            meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
            header = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
            self.proxy_ssl = (header, secure_value)
        self.ssl_redirect = bool(settings.SECURE_SSL_REDIRECT)
        self.user_agents = settings.DISALLOWED_USER_AGENTS
        self.body_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        self.headers = {secure: _answer_headers(secure) for secure in (False, True)}

    def read(self, scope: Scope) -> _Ping | None:
        """The ping this request is, if the fast path may answer it; None hands it to Django."""
        path = scope["path"]
        script_name = get_script_prefix(scope)
        if script_name:
            path = path.removeprefix(script_name)
        match = self.path.fullmatch(path)
        if match is None:
            return None
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if b"_" in name:
                continue  # as Django's ASGIRequest: no spoofing "x_forwarded_proto" as a hyphen
            if name in headers:
                return None  # Django joins repeated headers with commas; leave those to it
            headers[name] = value
        if not self._host_allowed(headers) or not self._agent_allowed(headers):
            return None
        secure = self._is_secure(scope, headers)
        if self.ssl_redirect and not secure:
            return None  # Django redirects to https (or knows the exemptions)
        length = headers.get(b"content-length", b"")
        if not length.isdigit() or (self.body_limit is not None and int(length) > self.body_limit):
            return None  # chunked, or too big: Django answers 400 for those
        suffix = match["suffix"]
        exit_code = int(suffix) if suffix and suffix.isdigit() else None
        if exit_code is not None and exit_code > heartbeats.MAX_EXIT_CODE:
            return None  # Django answers 400 naming the field
        named = (PingKind.START, PingKind.FAIL, PingKind.LOG)
        kind = PingKind(suffix) if suffix in named else PingKind.SUCCESS
        view = _VIEW_NAMES["exit" if exit_code is not None else suffix]
        agent = headers.get(b"user-agent", b"").decode("latin1")  # as Django's META
        return _Ping(uuid.UUID(match["key"]), kind, exit_code, view, int(length), secure, agent)

    def _host_allowed(self, headers: dict[bytes, bytes]) -> bool:
        host = headers.get(self.host_header) or headers.get(b"host")
        if host is None:
            return False  # HTTP/1.0 without Host: Django rebuilds it from the server name
        domain, _ = split_domain_port(host.decode("latin1"))
        return bool(domain) and validate_host(domain, self.allowed_hosts)

    def _agent_allowed(self, headers: dict[bytes, bytes]) -> bool:
        if not self.user_agents or b"user-agent" not in headers:
            return True
        agent = headers[b"user-agent"].decode("latin1")
        return not any(pattern.search(agent) for pattern in self.user_agents)

    def _is_secure(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        if self.proxy_ssl is not None and self.proxy_ssl[0] in headers:
            value = headers[self.proxy_ssl[0]].decode("latin1").split(",", 1)[0]
            return value.strip() == self.proxy_ssl[1]
        return bool(scope.get("scheme") == "https")


def _fast_path_stands_in_for_django() -> bool:
    """True while the fast path does all Django would do for a ping; else say why not."""
    from health.api import views

    known = ANSWER_HEADER_MIDDLEWARE + PASSIVE_MIDDLEWARE
    unknown = [m for m in settings.MIDDLEWARE if m not in known]
    ping_views = [
        views.PingView, views.PingStartView, views.PingFailView, views.PingLogView,
        views.PingExitCodeView,
    ]  # fmt: skip
    guarded = [
        view.__name__
        for view in ping_views
        if view.throttle_classes
        or view.authentication_classes
        or list(view.permission_classes) != [views.AnyoneWithTheKey]
    ]
    if unknown or guarded:
        logger.warning(
            "heartbeat pings go through Django (slower): the fast path in health/ping_asgi.py "
            "does not know what these middleware do to a ping: %s; these views throttle, "
            "authenticate or check more than the uuid: %s",
            ", ".join(unknown) or "none",
            ", ".join(guarded) or "none",
        )
    return not unknown and not guarded


class _AnswerRequest(HttpRequest):
    """Only what the answer-header middleware ask of a request: is it secure?"""

    def __init__(self, secure: bool) -> None:
        super().__init__()
        self._secure = secure

    def is_secure(self) -> bool:
        return self._secure


def _no_view(request: HttpRequest) -> HttpResponse:
    raise AssertionError("only process_response runs here")  # pragma: no cover


def _answer_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers of the Django view's 200, built by the same code that builds them there."""
    from health.api.views import PingView

    response = HttpResponse("OK\n", content_type="text/plain")
    # As DRF's APIView.finalize_response: Allow, and Vary: Accept with more than one renderer.
    view_headers = dict(PingView().default_response_headers)
    vary = view_headers.pop("Vary", None)
    if vary:
        patch_vary_headers(response, [vary])
    for name, value in view_headers.items():
        response[name] = value
    request = _AnswerRequest(secure)
    for path in reversed(settings.MIDDLEWARE):
        if path in ANSWER_HEADER_MIDDLEWARE:
            middleware = import_string(path)(_no_view)
            response = middleware.process_response(request, response)
    return [(k.lower().encode("latin1"), v.encode("latin1")) for k, v in response.items()]


class _Pool:
    """One async psycopg pool per process (and event loop), opened by the first ping."""

    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    opening: asyncio.Task[None] | None = None

    @classmethod
    async def get(cls) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        loop = asyncio.get_running_loop()
        if cls.pool is None or cls.loop is not loop:
            database = connections["default"]
            params = database.get_connection_params()
            params.pop("cursor_factory", None)  # Django's sync cursor and adapters stay there
            params.pop("context", None)
            params["prepare_threshold"] = _prepare_threshold(database.settings_dict)
            cls.pool = AsyncConnectionPool(
                kwargs={**params, "autocommit": True},
                min_size=1,
                max_size=settings.SIGNALBOX_PING_POOL_SIZE,
                timeout=10,
                name="heartbeat-pings",
                open=False,
            )
            cls.loop = loop
            cls.opening = loop.create_task(cls.pool.open())
        assert cls.opening is not None
        await cls.opening  # done after the first ping: returns at once
        return cls.pool

    @classmethod
    async def close(cls) -> None:
        pool, cls.pool, cls.loop, cls.opening = cls.pool, None, None, None
        if pool is not None:
            await pool.close()


close_pool = _Pool.close


def _prepare_threshold(database: dict[str, Any]) -> int | None:
    """Prepare the ping statement on each connection's first use: PostgreSQL then skips
    parsing and planning it (its CPU per ping went from 0.37 to 0.21 ms here). Not behind a
    transaction pooler, which Django's DISABLE_SERVER_SIDE_CURSORS says there is: the next
    server connection may not have the statement. An explicit OPTIONS value wins."""
    if "prepare_threshold" in database["OPTIONS"]:
        threshold: int | None = database["OPTIONS"]["prepare_threshold"]
        return threshold
    return None if database.get("DISABLE_SERVER_SIDE_CURSORS") else 0


def _announce_as_django_would(heartbeat_id: int, previous: str) -> None:
    # Django's request cycle closes stale and expired connections before and after the
    # view (request_started/request_finished); the hand-off gets the same care.
    signals.request_started.send(sender=PingFastPath)
    try:
        heartbeats.announce_change(heartbeat_id, previous)
    finally:
        signals.request_finished.send(sender=PingFastPath)


# Not thread-sensitive: a slow hand-off (say, Redis slow for the live push) must not queue
# every other transition of this process behind it on one thread. Each executor thread
# has its own Django connection, closed or kept after each hand-off as Django's own
# requests would (request_finished), so there are at most as many as executor threads.
_announce = sync_to_async(_announce_as_django_would, thread_sensitive=False)


class PingFastPath:
    """ASGI app: records steady heartbeat pings in one statement and answers exactly what the
    Django view (health.api.views.PingView) answers; every other request, and every ping it
    is not sure about (unknown uuid, cron schedule, too big, bad Host...), goes to Django."""

    def __init__(self, django: ASGIApp) -> None:
        self.django = django
        self._rules: _Rules | None = None
        setting_changed.connect(self._forget_rules, weak=False)

    def _forget_rules(self, **kwargs: Any) -> None:
        self._rules = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.django(scope, receive, send)
        started = time.perf_counter()
        rules = self._rules or self._load_rules()
        ping = rules.read(scope) if rules.enabled else None
        if ping is None:
            return await self.django(scope, receive, send)
        body = await _read_body(receive)
        if body is None:
            return  # the client went away; Django would not answer either
        if len(body) != ping.length:
            return await self.django(scope, _replay(body, receive), send)
        client = scope.get("client")  # what Django's ASGIRequest makes REMOTE_ADDR of
        arguments = heartbeats.ping_arguments(
            ping.key, ping.kind, ping.exit_code, body, datetime.now(UTC),
            remote_addr=client[0] if client else None, user_agent=ping.user_agent,
        )  # fmt: skip
        try:
            pool = await _Pool.get()
            async with pool.connection() as connection:
                statement = heartbeats.statement_for(ping.kind)
                cursor = await connection.execute(statement, arguments)
                row = await cursor.fetchone()
        except (psycopg.Error, PoolTimeout):
            # One statement in autocommit: it failed, so nothing was written (unless the
            # connection broke right after the commit: then the ping counts twice). Django
            # records the ping from scratch and answers as it always has: a database outage
            # answers 500 there too.
            logger.warning("heartbeat ping %s: handing it to Django", ping.key, exc_info=True)
            return await self.django(scope, _replay(body, receive), send)
        if row is None:
            # No heartbeat on a period schedule has this uuid: unknown (Django's 404) or cron
            # (for a log ping: unknown).
            return await self.django(scope, _replay(body, receive), send)
        heartbeat_id, previous, status = row
        if status != previous:
            await _announce(heartbeat_id, previous)
        await send(
            {"type": "http.response.start", "status": 200, "headers": rules.headers[ping.secure]}
        )
        await send({"type": "http.response.body", "body": b"OK\n"})
        REQUESTS.labels("POST", ping.view_name, "2xx").inc()
        LATENCY.labels(ping.view_name).observe(time.perf_counter() - started)

    def _load_rules(self) -> _Rules:
        self._rules = _Rules()
        return self._rules


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands Django the body already read, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
