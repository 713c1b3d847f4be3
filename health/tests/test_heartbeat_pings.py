"""A heartbeat's ping history: each ping through the endpoint leaves a row, the last 100
are kept, old ones are swept by age, and the API lists them page by page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from health import heartbeats
from health.choices import PingKind, ScheduleKind
from health.models import Heartbeat, HeartbeatPing
from health.models.heartbeats import PINGS_KEPT

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup(world: Any) -> Heartbeat:
    return Heartbeat.objects.create(
        name="nightly-backup", service=world.service, environment=world.production,
        period_seconds=3600, grace_seconds=300,
    )  # fmt: skip


def ping(heartbeat: Heartbeat, suffix: str = "", body: bytes = b"", agent: str = "") -> Any:
    url = reverse("heartbeat-ping", args=[heartbeat.uuid]) + suffix
    return APIClient().post(url, data=body, content_type="text/plain", HTTP_USER_AGENT=agent)


def history(heartbeat: Heartbeat) -> list[HeartbeatPing]:
    return list(HeartbeatPing.objects.filter(heartbeat=heartbeat).order_by("-n"))


def test_each_ping_is_kept_with_its_exit_code_duration_and_log_tail(backup: Heartbeat) -> None:
    # when a job starts, then ends with exit code 3 and a long log, then succeeds
    assert ping(backup, "/start", agent="curl/8.5.0").status_code == 200
    log = b"x" * 20_000 + b"\nERROR: disk full\n"
    assert ping(backup, "/3", body=log, agent="curl/8.5.0").status_code == 200
    assert ping(backup, body=b"all good").status_code == 200
    # then the history has all three, newest first, each as it arrived
    ok, failed, started = history(backup)
    assert [p.n for p in (ok, failed, started)] == [3, 2, 1]
    assert (started.kind, started.exit_code, started.duration_seconds) == (
        PingKind.START,
        None,
        None,
    )
    assert (failed.kind, failed.exit_code) == (PingKind.FAIL, 3)
    assert failed.duration_seconds is not None and 0 <= failed.duration_seconds < 60
    assert len(failed.body) == 10_000 and failed.body.endswith("ERROR: disk full\n")
    assert (failed.remote_addr, failed.user_agent) == ("127.0.0.1", "curl/8.5.0")
    assert (ok.kind, ok.exit_code, ok.duration_seconds, ok.body) == (
        PingKind.SUCCESS, None, None, "all good",
    )  # fmt: skip
    assert failed.at < ok.at


def test_a_cron_heartbeat_keeps_the_same_history(world: Any) -> None:
    report = Heartbeat.objects.create(
        name="report", service=world.service, schedule_kind=ScheduleKind.CRON, cron="0 3 * * *"
    )
    ping(report, "/start")
    ping(report, "/0", body=b"42 rows")
    done, started = history(report)
    assert (done.n, done.kind, done.exit_code, done.body) == (2, PingKind.SUCCESS, 0, "42 rows")
    assert started.kind == PingKind.START and done.duration_seconds is not None


@pytest.mark.parametrize("schedule", [ScheduleKind.PERIOD, ScheduleKind.CRON])
def test_only_the_last_100_pings_are_kept(world: Any, schedule: str) -> None:
    heartbeat = Heartbeat.objects.create(
        name="chatty", service=world.service, schedule_kind=schedule, cron="* * * * *"
        if schedule == ScheduleKind.CRON else "",
    )  # fmt: skip
    # when it pings 5 more times than the history keeps (as the view does, without HTTP)
    for n in range(PINGS_KEPT + 5):
        heartbeats.ping(heartbeat.uuid, PingKind.SUCCESS, None, f"run {n + 1}".encode())
    # then the oldest five are gone and the newest is there
    kept = history(heartbeat)
    assert len(kept) == PINGS_KEPT
    assert (kept[0].n, kept[0].body, kept[-1].n) == (PINGS_KEPT + 5, f"run {PINGS_KEPT + 5}", 6)
    heartbeat.refresh_from_db()
    assert heartbeat.ping_count == PINGS_KEPT + 5


def test_pings_past_the_retention_are_swept(backup: Heartbeat, settings: Any) -> None:
    settings.SIGNALBOX_HEARTBEAT_PING_RETENTION_DAYS = 30
    for body in (b"old 1", b"old 2", b"old 3", b"recent"):
        ping(backup, body=body)
    now = timezone.now()
    HeartbeatPing.objects.filter(body__startswith="old").update(at=now - timedelta(days=31))
    assert heartbeats.prune_pings(now=now, batch=2) == 3
    assert [p.body for p in history(backup)] == ["recent"]


def test_deleting_a_heartbeat_deletes_its_history(backup: Heartbeat) -> None:
    ping(backup)
    backup.delete()
    assert HeartbeatPing.objects.count() == 0


def test_the_api_lists_the_pings_newest_first_page_by_page(backup: Heartbeat, api_as: Any) -> None:
    for n in range(60):
        heartbeats.ping(backup.uuid, PingKind.SUCCESS, n % 2, f"run {n + 1}".encode())
    client = api_as("viewer")
    url = f"/api/v1/health/heartbeats/{backup.pk}/pings"
    first = client.get(url).json()
    assert first["count"] == 60 and len(first["results"]) == 50
    assert first["results"][0] == {
        "n": 60, "at": first["results"][0]["at"], "kind": "fail", "exit_code": 1,
        "duration_seconds": None, "body": "run 60", "remote_addr": None, "user_agent": "",
    }  # fmt: skip
    second = client.get(first["next"]).json()
    assert [p["n"] for p in second["results"]] == list(range(10, 0, -1))
    assert second["next"] is None
    small = client.get(url, {"page_size": 5}).json()
    assert [p["n"] for p in small["results"]] == [60, 59, 58, 57, 56]
    # an unknown heartbeat is 404, an anonymous caller 401 (as reading the heartbeat)
    assert client.get("/api/v1/health/heartbeats/999999/pings").status_code == 404
    assert api_as("anonymous").get(url).status_code == 401
