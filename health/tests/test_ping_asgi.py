"""The heartbeat ping's fast path, through the real ASGI application: same answers as the
Django view, transitions still published, everything it is unsure about handed to Django."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.urls import resolve
from rest_framework.throttling import AnonRateThrottle

from controlplane.asgi import application, django_asgi_app
from controlplane.metrics import REQUESTS
from controlplane.models import Event
from health import heartbeats
from health.api.views import PingView
from health.choices import HeartbeatStatus, ScheduleKind
from health.models import Heartbeat, HeartbeatPing
from health.models.heartbeats import PINGS_KEPT
from health.ping_asgi import ASGIApp, PingFastPath, Receive, Scope, Send, close_pool

# Committed rows: the fast path reads them on its own connections, as in production.
committed = pytest.mark.django_db(transaction=True)


class CountingDjango:
    """Django's ASGI app, counting the requests the fast path hands to it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def fast_path() -> Any:
    """The ping fast path inside the application (behind the load shedding layer)."""
    http = application.application_mapping["http"]
    return getattr(http, "app", http)


@pytest.fixture
def django(monkeypatch: pytest.MonkeyPatch) -> CountingDjango:
    """The real application, with a count of what reached Django."""
    counting = CountingDjango(django_asgi_app)
    monkeypatch.setattr(fast_path(), "django", counting)
    return counting


@pytest.fixture
def backup(world: Any) -> Heartbeat:
    return make_heartbeat(world, "nightly-backup")


@pytest.fixture(autouse=True)
def fresh_rules() -> Iterator[None]:
    # Settings changed by a test reset the rules as it ends; start each test from them too.
    fast_path()._rules = None
    yield


def make_heartbeat(world: Any, name: str, **fields: Any) -> Heartbeat:
    return Heartbeat.objects.create(
        name=name,
        service=world.service,
        environment=world.production,
        period_seconds=3600,
        grace_seconds=300,
        **fields,
    )


def request(
    app: Any, path: str, body: bytes = b"", method: str = "POST", headers: Any = None
) -> httpx.Response:
    """One request through an ASGI app, as uvicorn would hand it over."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                return await c.request(method, path, content=body, headers=headers)
        finally:
            await close_pool()  # the pool belongs to this event loop, which ends here

    return asyncio.run(send())


def ping(heartbeat: Heartbeat, suffix: str = "", body: bytes = b"") -> Any:
    return request(application, f"/api/v1/heartbeats/{heartbeat.uuid}{suffix}", body)


def answer(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    return response.status_code, response.content, sorted(response.headers.items())


def pings_counted(view: str) -> float:
    return float(REQUESTS.labels("POST", view, "2xx")._value.get())


@committed
def test_it_answers_exactly_what_the_django_view_answers(world: Any) -> None:
    # given two identical heartbeats, one pinged through the application, one through Django
    ours, theirs = make_heartbeat(world, "ours"), make_heartbeat(world, "theirs")
    for suffix, body in [("", b"ok"), ("/start", b""), ("", b""), ("/3", b"boom\n"),
                         ("/0", b""), ("/fail", b"")]:  # fmt: skip
        # when the same ping goes down each path
        fast = ping(ours, suffix, body)
        slow = request(django_asgi_app, f"/api/v1/heartbeats/{theirs.uuid}{suffix}", body)
        # then status, body and every header are the same
        assert answer(fast) == answer(slow), suffix
    # and so is what was recorded and published
    ours.refresh_from_db()
    theirs.refresh_from_db()
    fields = ["status", "down_reason", "last_exit_code", "last_log", "ping_count", "last_ping_kind"]
    assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields]
    assert ours.status == HeartbeatStatus.DOWN
    published = [
        list(
            Event.objects.filter(subject_type="health.heartbeat", subject_id=str(h.pk))
            .order_by("id")
            .values_list("action", flat=True)
        )
        for h in (ours, theirs)
    ]
    assert published[0] == published[1] == ["heartbeat.failed", "heartbeat.recovered",
                                             "heartbeat.failed"]  # fmt: skip


@committed
def test_it_answers_https_pings_with_the_same_security_headers(
    backup: Heartbeat, settings: Any
) -> None:
    # given a deployment behind a TLS proxy with HSTS (Django reads these when it starts)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    django = ASGIHandler()
    path = f"/api/v1/heartbeats/{backup.uuid}"
    # when a ping arrives over https, through the fast path and through Django
    https = [("X-Forwarded-Proto", "https")]
    fast = request(PingFastPath(django), path, headers=https)
    slow = request(django, path, headers=https)
    # then both carry the same Strict-Transport-Security and other headers
    assert fast.headers["strict-transport-security"] == "max-age=3600"
    assert answer(fast) == answer(slow)
    # and neither trusts the header spelt with an underscore
    spoofed = [("X_Forwarded_Proto", "https")]
    fast = request(PingFastPath(django), path, headers=spoofed)
    assert "strict-transport-security" not in fast.headers
    assert answer(fast) == answer(request(django, path, headers=spoofed))


@committed
def test_a_steady_ping_never_reaches_django(backup: Heartbeat, django: CountingDjango) -> None:
    counted_before = pings_counted("heartbeat-ping")
    # when a job pings three times
    for n in range(3):
        assert ping(backup, body=f"run {n}\n".encode()).status_code == 200
    # then each was recorded by the fast path alone, and counted in the request metrics
    assert django.paths == []
    backup.refresh_from_db()
    assert (backup.status, backup.ping_count, backup.last_log) == (HeartbeatStatus.UP, 3, "run 2\n")
    assert backup.last_ping_at is not None and backup.deadline is not None
    assert (backup.deadline - backup.last_ping_at).total_seconds() == 3600 + 300
    assert pings_counted("heartbeat-ping") == counted_before + 3


@committed
def test_a_late_heartbeat_recovers_and_says_so(backup: Heartbeat, django: CountingDjango) -> None:
    # given a heartbeat that went late
    ping(backup)
    backup.refresh_from_db()
    assert backup.deadline is not None
    assert heartbeats.mark_late(now=backup.deadline + timedelta(seconds=1)) == 1
    # when the job pings again
    response = ping(backup)
    # then it is up, and heartbeat.recovered is on the timeline
    assert response.status_code == 200
    backup.refresh_from_db()
    assert backup.status == HeartbeatStatus.UP
    event = Event.objects.get(action="heartbeat.recovered")
    assert (event.service, event.payload["from"], event.payload["to"]) == (
        backup.service, HeartbeatStatus.DOWN, HeartbeatStatus.UP,
    )  # fmt: skip
    assert django.paths == []


@committed
def test_a_failure_is_down_at_once_with_the_log_tail(
    backup: Heartbeat, django: CountingDjango
) -> None:
    ping(backup)
    # when the job reports exit code 3 with a long log, then /fail
    response = ping(backup, "/3", body=b"x" * 20_000 + b"\nERROR: disk full\n")
    # then it is down with the code and the last 10 KB, and heartbeat.failed is published
    assert response.status_code == 200
    backup.refresh_from_db()
    assert (backup.status, backup.down_reason) == (HeartbeatStatus.DOWN, "failed with exit code 3")
    assert len(backup.last_log) == 10_000 and backup.last_log.endswith("ERROR: disk full\n")
    assert Event.objects.filter(action="heartbeat.failed").count() == 1
    ping(backup, "/0")
    assert ping(backup, "/fail").status_code == 200
    backup.refresh_from_db()
    assert (backup.status, backup.down_reason) == (HeartbeatStatus.DOWN, "reported failure")
    assert Event.objects.filter(action="heartbeat.failed").count() == 2
    assert django.paths == []


@committed
def test_the_fast_path_keeps_the_ping_history_as_django_does(
    world: Any, django: CountingDjango
) -> None:
    # given two identical heartbeats, one pinged through the application, one through Django
    ours, theirs = make_heartbeat(world, "ours"), make_heartbeat(world, "theirs")
    agent = [("User-Agent", "backup.sh/2")]
    log = b"y" * 15_000 + b"\nERROR: <disk> full\n"
    for suffix, body in [("/start", b""), ("/4", log), ("", b"fine")]:
        # when the same pings go down each path
        fast = request(application, f"/api/v1/heartbeats/{ours.uuid}{suffix}", body, headers=agent)
        slow = request(
            django_asgi_app, f"/api/v1/heartbeats/{theirs.uuid}{suffix}", body, headers=agent
        )
        assert fast.status_code == slow.status_code == 200
    # then both histories hold the same rows: kind, exit code, a duration, the log's tail
    fields = ["n", "kind", "exit_code", "body", "remote_addr", "user_agent"]
    rows = [
        list(HeartbeatPing.objects.filter(heartbeat=h).order_by("-n").values_list(*fields))
        for h in (ours, theirs)
    ]
    assert rows[0] == rows[1]
    tail = "y" * (10_000 - len("\nERROR: <disk> full\n")) + "\nERROR: <disk> full\n"
    assert rows[0] == [
        (3, "success", None, "fine", "127.0.0.1", "backup.sh/2"),
        (2, "fail", 4, tail, "127.0.0.1", "backup.sh/2"),
        (1, "start", None, "", "127.0.0.1", "backup.sh/2"),
    ]
    failed = HeartbeatPing.objects.get(heartbeat=ours, n=2)
    assert failed.duration_seconds is not None and failed.duration_seconds >= 0
    assert django.paths == []  # ours went by the fast path alone


@committed
def test_the_fast_path_keeps_only_the_last_100(backup: Heartbeat, django: CountingDjango) -> None:
    # given a heartbeat whose history is full (its count says so: 100 pings so far)
    HeartbeatPing.objects.bulk_create(
        [HeartbeatPing(heartbeat=backup, n=n, at=backup.created_at, kind="success")
         for n in range(1, PINGS_KEPT + 1)]
    )  # fmt: skip
    Heartbeat.objects.filter(pk=backup.pk).update(ping_count=PINGS_KEPT)
    # when two more pings arrive through the fast path
    ping(backup, body=b"101")
    ping(backup, body=b"102")
    # then the two oldest made way for them, and Django never saw them
    kept = list(HeartbeatPing.objects.filter(heartbeat=backup).values_list("n", flat=True))
    assert len(kept) == PINGS_KEPT and (min(kept), max(kept)) == (3, PINGS_KEPT + 2)
    assert django.paths == []


@committed
def test_concurrent_pings_keep_a_gapless_history_of_the_last_100(
    backup: Heartbeat, django: CountingDjango
) -> None:
    # when 130 pings for one heartbeat arrive 16 at a time (under the load shedding limit;
    # the pool runs 4 statements at once, each waiting on the heartbeat's row lock)
    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=application)
        gate = asyncio.Semaphore(16)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                path = f"/api/v1/heartbeats/{backup.uuid}"

                async def one(n: int) -> int:
                    async with gate:
                        return (await c.post(path, content=f"run {n}".encode())).status_code

                return list(await asyncio.gather(*(one(n) for n in range(130))))
        finally:
            await close_pool()

    assert asyncio.run(burst()) == [200] * 130
    # then the row locks ordered them: the count is 130 and the history its last 100, no gaps
    backup.refresh_from_db()
    kept = sorted(HeartbeatPing.objects.filter(heartbeat=backup).values_list("n", flat=True))
    assert backup.ping_count == 130 and kept == list(range(31, 131))
    assert django.paths == []


@committed
def test_an_unknown_uuid_is_django_s_404(django: CountingDjango) -> None:
    response = request(application, "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no heartbeat has this uuid"
    assert len(django.paths) == 1


@committed
def test_a_body_over_the_upload_limit_is_refused_and_not_recorded(
    backup: Heartbeat, settings: Any, django: CountingDjango
) -> None:
    # given the upload limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB by default) set low
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    # when a job sends a log over it
    response = ping(backup, body=b"y" * 50_001)
    # then the ping is refused with 400, as Django refuses it, and not recorded
    assert response.status_code == 400
    backup.refresh_from_db()
    assert backup.ping_count == 0
    # and a log at the limit is taken, its tail kept
    assert ping(backup, body=b"z" * 50_000).status_code == 200
    backup.refresh_from_db()
    assert (backup.ping_count, len(backup.last_log)) == (1, 10_000)


@committed
def test_it_hands_everything_else_to_django(world: Any, django: CountingDjango) -> None:
    cron = make_heartbeat(world, "report", schedule_kind=ScheduleKind.CRON, cron="0 3 * * *")
    path = f"/api/v1/heartbeats/{cron.uuid}"
    # a cron schedule needs croniter: Django records it
    assert request(application, path).status_code == 200
    cron.refresh_from_db()
    assert (cron.status, cron.ping_count) == (HeartbeatStatus.UP, 1)
    # other methods, a Host not allowed, an upper-case uuid: Django's answers
    assert request(application, path, method="GET").status_code == 405
    assert request(application, path, method="OPTIONS").status_code == 200
    assert request(application, path, headers={"Host": "evil.example"}).status_code == 400
    assert request(application, path.upper().replace("/API/V1/HEARTBEATS", "/api/v1/heartbeats")
                   ).status_code == 404  # fmt: skip
    assert len(django.paths) == 5


@committed
def test_a_middleware_it_does_not_know_sends_pings_through_django(
    backup: Heartbeat, settings: Any, django: CountingDjango, caplog: pytest.LogCaptureFixture
) -> None:
    # given a middleware added that the fast path cannot vouch for
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    # when a job pings
    response = ping(backup)
    # then Django answers it, and the log says why pings got slower
    assert response.status_code == 200
    assert len(django.paths) == 1
    assert "GZipMiddleware" in caplog.text


@committed
def test_a_throttled_ping_view_sends_pings_through_django(
    backup: Heartbeat, monkeypatch: pytest.MonkeyPatch, django: CountingDjango
) -> None:
    # given the ping view throttled (the fast path would skip the throttle)
    monkeypatch.setattr(PingView, "throttle_classes", [AnonRateThrottle])
    monkeypatch.setattr(AnonRateThrottle, "rate", "1000/min", raising=False)
    # when a job pings, then Django answers it
    assert ping(backup).status_code == 200
    assert len(django.paths) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/start",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/log",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/logs",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/fail",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/007",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/",
        "/api/v1/heartbeats/6F1C2A1E-0000-4000-8000-000000000000",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/-1",
        "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/start/",
        "/api/v1/health/heartbeats",
    ],
)
def test_it_takes_exactly_the_paths_of_the_ping_views(path: str) -> None:
    scope = {"type": "http", "method": "POST", "path": path, "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-length", b"0")]}  # fmt: skip
    taken = fast_path()._load_rules().read(scope)
    try:
        view_name = resolve(path).url_name
    except Exception:
        view_name = None
    ping_view = view_name if view_name and view_name.startswith("heartbeat-ping") else None
    assert (taken.view_name if taken else None) == ping_view


@committed
def test_odd_pings_get_the_same_clear_answer_on_both_paths(world: Any) -> None:
    ours, theirs = make_heartbeat(world, "ours"), make_heartbeat(world, "theirs")
    # an exit code no process can return is refused, naming the field, and nothing is recorded
    fast = ping(ours, "/4294967296")
    slow = request(django_asgi_app, f"/api/v1/heartbeats/{theirs.uuid}/256")
    for response in (fast, slow):
        assert response.status_code == 400
        assert "exit_code" in response.json()["error"]["fields"]
    ours.refresh_from_db()
    assert ours.ping_count == 0
    # a log with NUL bytes (a binary dump) is kept, the NULs shown as replacement characters
    for heartbeat, app in ((ours, application), (theirs, django_asgi_app)):
        response = request(app, f"/api/v1/heartbeats/{heartbeat.uuid}/2", b"core\x00dumped\n")
        assert response.status_code == 200
        heartbeat.refresh_from_db()
        assert heartbeat.last_log == "core\ufffddumped\n"
        assert heartbeat.down_reason == "failed with exit code 2"


@committed
@pytest.mark.parametrize("schedule", [ScheduleKind.PERIOD, ScheduleKind.CRON])
def test_a_log_ping_is_kept_without_touching_state_on_both_paths(
    world: Any, django: CountingDjango, schedule: str
) -> None:
    # given two identical heartbeats, up after a ping, one pinged through the fast path
    cron = {"schedule_kind": schedule, "cron": "0 3 * * *"} if schedule == ScheduleKind.CRON else {}
    ours, theirs = make_heartbeat(world, "ours", **cron), make_heartbeat(world, "theirs", **cron)
    for heartbeat in (ours, theirs):
        assert ping(heartbeat, body=b"done").status_code == 200
        heartbeat.refresh_from_db()
    django.paths.clear()
    fields = ["status", "down_reason", "deadline", "last_ping_at", "last_ping_kind", "last_log"]
    before = {h.pk: [getattr(h, f) for f in fields] for h in (ours, theirs)}
    # when each gets a /log ping with a long body, by the fast path and by Django
    log = b"z" * 12_000 + b"\nrotated 3 files\n"
    fast = ping(ours, "/log", log)
    slow = request(django_asgi_app, f"/api/v1/heartbeats/{theirs.uuid}/log", log)
    # then both answer the same, and neither heartbeat's state or lateness moved
    assert answer(fast) == answer(slow) and fast.status_code == 200
    for heartbeat in (ours, theirs):
        heartbeat.refresh_from_db()
        assert [getattr(heartbeat, f) for f in fields] == before[heartbeat.pk]
        assert heartbeat.status == HeartbeatStatus.UP and heartbeat.ping_count == 2
        # and the history has the log row, its body capped to the tail like any ping
        newest = HeartbeatPing.objects.filter(heartbeat=heartbeat).order_by("-n").first()
        assert newest is not None
        assert (newest.n, newest.kind, newest.exit_code) == (2, "log", None)
        assert len(newest.body) == 10_000 and newest.body.endswith("rotated 3 files\n")
    assert not Event.objects.filter(subject_id__in=[str(ours.pk), str(theirs.pk)]).exists()
    # a period heartbeat's log ping never reached Django; LOG_SQL serves cron ones too
    assert django.paths == []


@committed
def test_a_log_ping_does_not_save_a_late_heartbeat(backup: Heartbeat) -> None:
    # given a heartbeat past its deadline
    ping(backup)
    Heartbeat.objects.filter(pk=backup.pk).update(deadline=backup.created_at - timedelta(minutes=1))
    # when only a /log ping arrives before the sweep
    assert ping(backup, "/log", b"still alive?").status_code == 200
    # then the sweep still marks it down: a log is not a sign of life
    assert heartbeats.mark_late() == 1
    backup.refresh_from_db()
    assert backup.status == HeartbeatStatus.DOWN


@committed
def test_a_log_ping_for_an_unknown_uuid_is_404(django: CountingDjango) -> None:
    response = request(application, "/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/log")
    assert response.status_code == 404
    assert django.paths == ["/api/v1/heartbeats/6f1c2a1e-0000-4000-8000-000000000000/log"]
