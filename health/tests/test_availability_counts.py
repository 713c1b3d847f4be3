"""Availability for other apps (alerting's SLO burn) comes from the rollups, minute and hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from health import rollups
from health.choices import CheckStatus
from health.models import HourRollup, RollupWatermark
from health.rollups import Bucket
from health.services import availability_counts


def record(
    world: Any, at: datetime, passed: int, failed: int = 0, warned: int = 0, env: Any = None
) -> None:
    """Probe results for checkout at `at`, written the way a probe batch writes them."""
    bucket = Bucket()
    for status, n in ((CheckStatus.PASS, passed), (CheckStatus.FAIL, failed)):
        for _ in range(n):
            bucket.add(status, 5.0)
    for _ in range(warned):
        bucket.add(CheckStatus.WARN, 900.0)
    env = env or world.production
    rollups.upsert({(world.service.pk, env.pk, rollups.minute_of(at)): bucket})


@pytest.mark.django_db
def test_it_counts_probes_that_did_not_fail_as_good(world: Any) -> None:
    # given the last 3 minutes: 18 probes a minute, 4 failures in all and 2 slow (warn) ones
    now = timezone.now()
    record(world, now - timedelta(minutes=2), passed=18)
    record(world, now - timedelta(minutes=1), passed=12, failed=4, warned=2)
    record(world, now, passed=18)
    # when alerting asks for the last 5 minutes
    good, total = availability_counts(
        world.service.pk, world.production.pk, now - timedelta(minutes=5)
    )
    # then warnings are good, failures are not
    assert (good, total) == (50, 54)


@pytest.mark.django_db
def test_it_reads_only_the_window_and_only_that_service_and_environment(world: Any) -> None:
    # given an old failing minute, failures in staging, and a clean recent minute
    now = timezone.now()
    record(world, now - timedelta(minutes=30), passed=0, failed=18)
    record(world, now, passed=0, failed=18, env=world.staging)
    record(world, now - timedelta(minutes=1), passed=18)
    # when asking about production over the last 10 minutes
    counts = availability_counts(world.service.pk, world.production.pk, now - timedelta(minutes=10))
    # then only the recent production minute counts
    assert counts == (18, 18)
    assert availability_counts(world.other_service.pk, world.production.pk, now) == (0, 0)


@pytest.mark.django_db
def test_the_minute_the_window_starts_in_counts_whole(world: Any) -> None:
    # given failures at 12:00:10 and a window starting at 12:00:40
    minute = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    record(world, minute + timedelta(seconds=10), passed=10, failed=8)
    # then the bucket overlapping the window counts (a window is never shorter than asked)
    since = minute + timedelta(seconds=40)
    assert availability_counts(world.service.pk, world.production.pk, since) == (10, 18)
    # and the minute before the window does not
    later = minute + timedelta(minutes=1)
    assert availability_counts(world.service.pk, world.production.pk, later) == (0, 0)


@pytest.mark.django_db
def test_older_windows_read_the_hourly_rows_without_counting_twice(world: Any) -> None:
    # given two days ago: two minutes with 6 failures of 36; and now: one clean minute
    now = timezone.now()
    two_days_ago = rollups.hour_of(now - timedelta(days=2)) + timedelta(minutes=5)
    record(world, two_days_ago, passed=12, failed=6)
    record(world, two_days_ago + timedelta(minutes=1), passed=18)
    record(world, now, passed=18)
    three_days = now - timedelta(days=3)
    before = availability_counts(world.service.pk, world.production.pk, three_days)
    # when the old minutes are folded into an hourly row
    assert rollups.compact(now) == 2
    assert HourRollup.objects.count() == 1
    # then a 3-day window reads the hour row and the recent minute, each probe once
    assert availability_counts(world.service.pk, world.production.pk, three_days) == before
    assert before == (48, 54)
    # and a window starting inside that hour counts the whole hour row
    inside = two_days_ago + timedelta(minutes=30)
    assert availability_counts(world.service.pk, world.production.pk, inside) == (48, 54)


@pytest.mark.django_db
def test_a_window_given_in_another_timezone_means_the_same_moment(world: Any) -> None:
    from zoneinfo import ZoneInfo

    # given failures in the UTC hour 12:00 (compacted) and a window from 12:40 UTC
    hour = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    HourRollup.objects.create(
        service=world.service,
        environment=world.production,
        bucket=hour,
        count=1000,
        failures=10,
        histogram=[0] * len(Bucket().histogram),
    )
    RollupWatermark.objects.update_or_create(
        id=1, defaults={"folded_until": hour + timedelta(hours=1)}
    )
    # when the start is given in India (UTC+05:30, so its local hour starts at 12:30 UTC)
    since = (hour + timedelta(minutes=40)).astimezone(ZoneInfo("Asia/Kolkata"))
    # then the UTC hour row still overlaps the window
    assert availability_counts(world.service.pk, world.production.pk, since) == (990, 1000)
