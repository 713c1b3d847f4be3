"""Heartbeats: pings on time, late, failed, started-but-unfinished; the ping stays cheap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.models import Event
from health import heartbeats
from health.choices import HeartbeatStatus, ScheduleKind
from health.models import Heartbeat


@pytest.fixture
def backup(world: Any) -> Heartbeat:
    return Heartbeat.objects.create(
        name="nightly-backup",
        service=world.service,
        environment=world.production,
        period_seconds=3600,
        grace_seconds=300,
    )


def ping(heartbeat: Heartbeat, suffix: str = "", body: bytes = b"") -> Any:
    url = reverse("heartbeat-ping", args=[heartbeat.uuid]) + suffix
    return APIClient().post(url, data=body, content_type="text/plain")


@pytest.mark.django_db
def test_a_ping_on_time_keeps_it_up(backup: Heartbeat) -> None:
    # when the job pings, anonymously, with its uuid
    response = ping(backup)
    # then it is up and due again after the period plus grace
    assert response.status_code == 200
    backup.refresh_from_db()
    assert backup.status == HeartbeatStatus.UP
    assert backup.last_ping_at is not None and backup.deadline is not None
    assert (backup.deadline - backup.last_ping_at).total_seconds() == 3600 + 300
    # and the late sweep before the deadline leaves it alone
    assert heartbeats.mark_late(now=backup.deadline - timedelta(seconds=1)) == 0


@pytest.mark.django_db
def test_silence_past_the_deadline_means_down(backup: Heartbeat) -> None:
    # given a heartbeat that pinged once
    ping(backup)
    backup.refresh_from_db()
    assert backup.deadline is not None
    # when the sweep runs after period + grace
    marked = heartbeats.mark_late(now=backup.deadline + timedelta(seconds=1))
    # then it is down as late, and says so once
    backup.refresh_from_db()
    assert marked == 1
    assert backup.status == HeartbeatStatus.DOWN
    assert backup.down_reason.startswith("late: last ping ")
    assert Event.objects.filter(action="heartbeat.late").count() == 1
    assert heartbeats.mark_late(now=timezone.now() + timedelta(days=1)) == 0
    # and the next ping recovers it
    ping(backup)
    backup.refresh_from_db()
    assert backup.status == HeartbeatStatus.UP
    assert Event.objects.filter(action="heartbeat.recovered").count() == 1


@pytest.mark.django_db
def test_a_fail_ping_or_a_nonzero_exit_code_is_down_with_the_log_tail(backup: Heartbeat) -> None:
    ping(backup)
    # when the job reports exit code 3 with a long log
    log = b"x" * 20_000 + b"\nERROR: disk full\n"
    response = ping(backup, "/3", body=log)
    # then it is down, with the code and the last 10 KB of the log
    assert response.status_code == 200
    backup.refresh_from_db()
    assert backup.status == HeartbeatStatus.DOWN
    assert backup.down_reason == "failed with exit code 3"
    assert backup.last_exit_code == 3
    assert len(backup.last_log) == 10_000
    assert backup.last_log.endswith("ERROR: disk full\n")
    event = Event.objects.get(action="heartbeat.failed")
    assert event.service == backup.service
    # and /fail says the same without a code; exit code 0 is a success
    ping(backup, "/0")
    ping(backup, "/fail")
    backup.refresh_from_db()
    assert (backup.status, backup.down_reason) == (HeartbeatStatus.DOWN, "reported failure")


@pytest.mark.django_db
def test_a_started_job_must_finish_within_grace(backup: Heartbeat) -> None:
    ping(backup)
    # when the job starts and never finishes
    ping(backup, "/start")
    backup.refresh_from_db()
    assert backup.deadline is not None and backup.started_at is not None
    assert (backup.deadline - backup.started_at).total_seconds() == 300
    heartbeats.mark_late(now=backup.deadline + timedelta(seconds=1))
    # then it is down as unfinished
    backup.refresh_from_db()
    assert backup.status == HeartbeatStatus.DOWN
    assert "not finished within 300 s grace" in backup.down_reason


@pytest.mark.django_db
def test_a_finished_job_records_its_duration(backup: Heartbeat) -> None:
    ping(backup, "/start")
    ping(backup)
    backup.refresh_from_db()
    assert backup.last_duration_seconds is not None and backup.last_duration_seconds >= 0
    assert backup.started_at is None


@pytest.mark.django_db
def test_a_cron_schedule_sets_the_deadline_at_the_next_run(world: Any) -> None:
    heartbeat = Heartbeat.objects.create(
        name="report",
        service=world.service,
        schedule_kind=ScheduleKind.CRON,
        cron="0 3 * * *",
        grace_seconds=600,
    )
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert heartbeat.deadline_after(at) == datetime(2026, 3, 2, 3, 10, tzinfo=UTC)


@pytest.mark.django_db
def test_a_new_heartbeat_is_not_late_before_its_first_ping(backup: Heartbeat) -> None:
    assert heartbeats.mark_late(now=timezone.now() + timedelta(days=30)) == 0


@pytest.mark.django_db
def test_an_unknown_uuid_is_404_in_the_error_shape() -> None:
    response = APIClient().post(
        reverse("heartbeat-ping", args=["6f1c2a1e-0000-4000-8000-000000000000"])
    )
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no heartbeat has this uuid"


@pytest.mark.django_db
def test_the_ping_handler_takes_one_query(backup: Heartbeat) -> None:
    ping(backup)  # the first ping changes state (new -> up); measure a steady one
    with CaptureQueriesContext(connection) as queries:
        assert ping(backup).status_code == 200
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(statements) == 1, statements


@pytest.mark.django_db
def test_a_cron_heartbeat_takes_the_orm_path(world: Any) -> None:
    heartbeat = Heartbeat.objects.create(
        name="report", service=world.service, schedule_kind=ScheduleKind.CRON, cron="0 3 * * *"
    )
    ping(heartbeat)
    heartbeat.refresh_from_db()
    assert heartbeat.status == HeartbeatStatus.UP
    assert heartbeat.deadline is not None and heartbeat.deadline.hour == 4  # 03:00 + 1 h grace
