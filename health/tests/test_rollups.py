"""History stays small: minutes fold into hours after a day, everything goes after retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from controlplane.models import Event
from health import maintenance, rollups
from health.choices import TransitionLevel
from health.models import HourRollup, MaintenanceWindow, MinuteRollup, RollupWatermark, Transition
from health.models.history import HISTOGRAM_SIZE
from health.rollups import Bucket


def test_percentiles_come_from_the_histogram() -> None:
    bucket = Bucket()
    for latency in [1.5] * 50 + [12.0] * 45 + [400.0] * 5:
        bucket.add("pass", latency)
    assert rollups.histogram_percentile(bucket.histogram, 0.5, bucket.latency_max_ms) == 2.0
    p95 = rollups.histogram_percentile(bucket.histogram, 0.95, bucket.latency_max_ms)
    assert p95 is not None and 10 <= p95 <= 15
    assert rollups.histogram_percentile([0] * HISTOGRAM_SIZE, 0.5, 0) is None


def test_failures_count_but_stay_out_of_latency() -> None:
    bucket = Bucket()
    bucket.add("fail", 1000.0)
    bucket.add("warn", 5.0)
    assert (bucket.count, bucket.failures, bucket.warnings) == (2, 1, 1)
    assert bucket.latency_max_ms == 5.0 and sum(bucket.histogram) == 1


@pytest.mark.django_db
def test_upserts_from_two_batches_add_up(world: Any) -> None:
    minute = rollups.minute_of(timezone.now())
    key = (world.service.pk, world.production.pk, minute)
    for latencies in ([3.0, 4.0], [20.0]):
        batch = Bucket()
        for latency in latencies:
            batch.add("pass", latency)
        rollups.upsert({key: batch})
    row = MinuteRollup.objects.get()
    assert (row.count, row.latency_max_ms, sum(row.histogram)) == (3, 20.0, 3)
    assert row.latency_sum_ms == 27.0


@pytest.mark.django_db
def test_minutes_older_than_a_day_fold_into_hours_and_old_history_is_pruned(
    world: Any, settings: Any
) -> None:
    # given minute rollups from two days ago and from now, and an old transition
    settings.SIGNALBOX_HEALTH_RETENTION_DAYS = 30
    now = timezone.now()
    old_hour = rollups.hour_of(now - timedelta(days=2))
    for minute in range(3):
        histogram = [0] * HISTOGRAM_SIZE
        histogram[2] = 5
        MinuteRollup.objects.create(
            service=world.service,
            environment=world.production,
            bucket=old_hour + timedelta(minutes=minute),
            count=6,
            failures=1,
            latency_sum_ms=10,
            latency_max_ms=3,
            histogram=histogram,
        )
    MinuteRollup.objects.create(
        service=world.service,
        environment=world.production,
        bucket=rollups.minute_of(now),
        count=1,
        histogram=[0] * HISTOGRAM_SIZE,
    )
    # (written straight into the table: not folded yet, the watermark is before them)
    RollupWatermark.objects.update_or_create(id=1, defaults={"folded_until": old_hour})
    Transition.objects.create(
        level=TransitionLevel.SERVICE,
        service=world.service,
        environment=world.production,
        from_status="healthy",
        to_status="down",
        at=now - timedelta(days=31),
    )
    # when compaction and pruning run
    folded = rollups.compact(now)
    pruned = rollups.prune(now)
    # then the old minutes became one hour row with the same totals, and the old
    # transition is gone
    assert folded == 3
    hour = HourRollup.objects.get()
    assert (hour.bucket, hour.count, hour.failures, hour.histogram[2]) == (old_hour, 18, 3, 15)
    assert MinuteRollup.objects.count() == 1
    assert pruned == (0, 1)
    # and uptime still counts the folded probes
    assert rollups.uptime(world.service.pk, world.production.pk, now)["7d"] == round(
        100 * (19 - 3) / 19, 3
    )
    # and past the retention the hour row goes too
    assert rollups.prune(now + timedelta(days=40))[0] == 1
    assert not HourRollup.objects.exists()


@pytest.mark.django_db
def test_maintenance_windows_announce_start_and_end(world: Any) -> None:
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        service=world.service,
        environment=world.production,
        starts_at=now + timedelta(minutes=10),
        ends_at=now + timedelta(minutes=20),
        reason="upgrade",
    )
    assert maintenance.announce(now) == 0
    assert maintenance.announce(now + timedelta(minutes=11)) == 1
    assert maintenance.announce(now + timedelta(minutes=12)) == 0
    assert maintenance.announce(now + timedelta(minutes=21)) == 1
    actions = list(Event.objects.order_by("id").values_list("action", flat=True))
    assert actions[-2:] == ["maintenance.started", "maintenance.ended"]
    assert window.is_active_at(now + timedelta(minutes=15))


def test_a_recurring_window_is_active_for_its_duration() -> None:
    window = MaintenanceWindow(cron="0 2 * * 6", duration_minutes=60, timezone="UTC")
    saturday = datetime(2026, 5, 2, 2, 0, tzinfo=UTC)
    assert window.is_active_at(saturday)
    assert window.is_active_at(saturday + timedelta(minutes=59))
    assert not window.is_active_at(saturday + timedelta(minutes=61))
    assert not window.is_active_at(saturday - timedelta(minutes=1))
