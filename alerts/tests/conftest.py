"""Fixtures for alerting tests: real HTTP receivers and a real SMTP server on loopback,
a team with channels and routes, and a way to publish events through the real spine."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from alerts.choices import ChannelKind, Severity

WEBHOOK_SECRET = "webhook-signing-secret-0123456789"
ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    query: str = ""

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 that records every request and answers from a plan."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    plan: dict[str, list[tuple[int, str, dict[str, str]]]] = field(default_factory=dict)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond(self, path: str, *answers: int | tuple[int, str, dict[str, str]]) -> None:
        """The next requests to `path` get these statuses, in order; then 200."""
        self.plan[path] = [a if isinstance(a, tuple) else (a, "err", {}) for a in answers]

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(path)
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"{path}: expected {count} request(s), got {len(self.to(path))}")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self.lock:
            self.requests.append(
                Received(
                    request.method,
                    request.path,
                    dict(request.headers),
                    body,
                    time.time(),
                    request.query_string,
                )
            )
            planned = self.plan.get(request.path) or []
            status, text, headers = planned.pop(0) if planned else (200, "ok", {})
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=status, text=text, headers=headers)


@contextmanager
def serving(ssl_context: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A real HTTP(S) server on a free loopback port, in its own thread and event loop."""
    recv = Receiver()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner_box: dict[str, web.AppRunner] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", recv.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        recv.port = runner.addresses[0][1]
        runner_box["runner"] = runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(5)
    yield recv
    asyncio.run_coroutine_threadsafe(runner_box["runner"].cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as recv:
        yield recv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings: Any) -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on loopback; Django's SMTP backend sends to it."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    yield mailbox
    controller.stop()


@pytest.fixture(autouse=True)
def quiet_dispatch(settings: Any) -> None:
    # Tests drive evaluation and delivery themselves, step by step; no Celery worker is
    # listening, so nothing is sent to the broker.
    settings.ALERTS_DISPATCH = False
    settings.SIGNALBOX_EVENT_CONSUMERS = []
    settings.ALERTS_RETRY_BASE_MS = 20
    settings.SIGNALBOX_BASE_URL = "https://signalbox.example"
    # The personas' passwords need no strength here; the default hasher costs seconds a test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Alerting:
    """The world's team with a Slack, a PagerDuty and a webhook channel, each routed."""

    world: Any
    receiver: Receiver
    slack: Any
    pagerduty: Any
    webhook: Any

    def route(self, channel: Any, severity: str = Severity.PAGE, **kwargs: Any) -> Any:
        from alerts.models import Route

        kwargs.setdefault("group_wait_seconds", 0)
        return Route.objects.create(
            team=self.world.team, severity=severity, channel=channel, **kwargs
        )


@pytest.fixture
def alerting(world: Any, receiver: Receiver) -> Alerting:
    from alerts.models import Channel

    team = world.team
    slack = Channel.objects.create(
        team=team, name="slack", kind=ChannelKind.SLACK, secret=receiver.url("/slack")
    )
    pagerduty = Channel.objects.create(
        team=team,
        name="pagerduty",
        kind=ChannelKind.PAGERDUTY,
        secret=ROUTING_KEY,
        url=receiver.url("/pagerduty"),
    )
    webhook = Channel.objects.create(
        team=team,
        name="webhook",
        kind=ChannelKind.WEBHOOK,
        secret=WEBHOOK_SECRET,
        url=receiver.url("/hook"),
    )
    return Alerting(world, receiver, slack, pagerduty, webhook)


def spine(action: str, **kwargs: Any) -> Any:
    """Publish through the real spine and evaluate the event as the Celery task would."""
    from alerts.evaluation import evaluate_event
    from controlplane.events import publish

    event = publish(action, **kwargs)
    evaluate_event(event.pk)
    return event


def service_changed(world: Any, to: str, env: Any = None, **payload: Any) -> Any:
    env = env or world.production
    return spine(
        "health.service.changed",
        subject=world.service,
        environment=env,
        payload={
            "from": "healthy",
            "to": to,
            "reason": payload.pop("reason", f"now {to}"),
            "in_maintenance": False,
            **payload,
        },
    )


def deliver_all(worker: str = "test-worker", rounds: int = 20) -> int:
    """Run the delivery loop until nothing is due (what a worker does)."""
    from alerts.outbox import deliver_due

    total = 0
    for _ in range(rounds):
        sent = deliver_due(worker)
        total += sent
        if not sent:
            break
    return total
