"""Rollup storage: hourly minute partitions (hot, packed, dropped), continuous hour rows up
to a watermark that readers respect, and the tiles' day summaries."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from health import rollups
from health.choices import CheckStatus
from health.models import HourRollup, MinuteRollup, RollupWatermark
from health.rollups import Bucket, DaySummary


def probes(passed: int, failed: int = 0, latency_ms: float = 5.0) -> Bucket:
    bucket = Bucket()
    for _ in range(passed):
        bucket.add(CheckStatus.PASS, latency_ms)
    for _ in range(failed):
        bucket.add(CheckStatus.FAIL, 3000.0)
    return bucket


def partitions() -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, coalesce(c.reloptions, '{}') FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'health_rollup_minute'::regclass"
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db
def test_finished_minutes_fold_into_their_hour_once_and_readers_count_each_minute_once(
    world: Any,
) -> None:
    # given 30 minutes of probes (2 of 10 failing each minute) and nothing folded yet
    now = timezone.now().astimezone(UTC)
    start = rollups.minute_of(now) - timedelta(minutes=30)
    RollupWatermark.objects.update_or_create(id=1, defaults={"folded_until": start})
    key = (world.service.pk, world.production.pk)
    for minute in range(30):
        rollups.upsert({(*key, start + timedelta(minutes=minute)): probes(8, 2)})
    before = rollups.uptime(*key, now)
    # when the fold runs twice (two workers, or a retry)
    folded = rollups.fold(now) + rollups.fold(now)
    # then the minutes up to 2 minutes ago went into hour rows once, and the figures read the
    # same: hour rows before the watermark, minute rows after it
    assert folded == 28
    assert rollups.watermark() == rollups.minute_of(now) - rollups.FOLD_GRACE
    assert sum(HourRollup.objects.values_list("count", flat=True)) == 280
    assert rollups.uptime(*key, now) == before == {"24h": 80.0, "7d": 80.0, "30d": 80.0}
    points = rollups.series(*key, now - timedelta(hours=2), now, "hour")
    assert sum(p.count for p in points) == 300
    # and a batch that arrives after its minute was folded still reaches the hour row
    rollups.upsert({(*key, start): probes(10)})
    assert sum(HourRollup.objects.values_list("count", flat=True)) == 290
    assert rollups.uptime(*key, now)["24h"] == round(100 * 250 / 310, 3)


@pytest.mark.django_db
def test_partitions_are_made_ahead_packed_when_finished_and_dropped_after_a_day(
    world: Any,
) -> None:
    # given the maintenance at some hour, with a minute written into the DEFAULT partition
    # before its partition existed
    hour = rollups.hour_of(timezone.now().astimezone(UTC) + timedelta(days=3))  # not made yet
    now = hour + timedelta(minutes=30)
    key = (world.service.pk, world.production.pk)
    rollups.upsert({(*key, hour + timedelta(minutes=1)): probes(5)})
    assert rollups.partition_name(hour) not in partitions()
    rollups.compact(now)
    # then partitions exist from the last hour (over 10 minutes ago: packed) to 3 hours
    # ahead (hot: fillfactor 50), and the minute moved into its own
    made = partitions()
    assert made[rollups.partition_name(hour - timedelta(hours=1))] == ["fillfactor=100"]
    for offset in range(rollups.PARTITIONS_AHEAD + 1):
        name = rollups.partition_name(hour + timedelta(hours=offset))
        assert made[name] == ["fillfactor=50"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {rollups.partition_name(hour)}")  # noqa: S608
        assert cursor.fetchone()[0] == 1
    # when the hour is over (and the minutes folded), it is rewritten packed
    later = hour + timedelta(hours=1) + rollups.REWRITE_AFTER
    rollups.compact(later)
    assert partitions()[rollups.partition_name(hour)] == ["fillfactor=100"]
    assert MinuteRollup.objects.get().count == 5
    # and a day later it is dropped whole, its probes kept in the hour row
    rollups.compact(hour + timedelta(hours=25))
    assert rollups.partition_name(hour) not in partitions()
    assert not MinuteRollup.objects.exists()
    assert HourRollup.objects.get(bucket=hour).count == 5


@pytest.mark.django_db
def test_day_summaries_give_uptime_and_hourly_latency_in_one_query(
    world: Any, django_assert_num_queries: Any
) -> None:
    # given probes over the last day: this hour 20 ms, 5 hours ago 40 ms with failures, and
    # one minute just over 24 h ago (outside the day)
    now = timezone.now().astimezone(UTC)
    key = (world.service.pk, world.production.pk)
    rollups.upsert({(*key, rollups.minute_of(now)): probes(10, latency_ms=20.0)})
    five = rollups.minute_of(now - timedelta(hours=5))
    rollups.upsert({(*key, five): probes(6, 4, latency_ms=40.0)})
    rollups.upsert({(*key, rollups.minute_of(now - timedelta(hours=24, minutes=2))): probes(9)})
    rollups.fold(now)  # the 5-hours-ago minute is read from its hour row
    other = (world.service.pk, world.staging.pk)
    # when the tiles ask for both environments
    with django_assert_num_queries(1):
        found = rollups.day_summaries([key, other], now)
    # then the uptime counts the day's 20 probes (4 failed); the latency is per hour, the
    # current hour last, failures left out
    summary = found[key]
    assert summary.uptime == 80.0
    assert summary.latency_ms[-1] == 20.0
    assert summary.latency_ms[-6] == 40.0
    assert sum(p is not None for p in summary.latency_ms) == 2
    assert summary.uptime == rollups.uptime(*key, now)["24h"]
    # and a pair without probes has nothing
    assert found[other] == DaySummary(None, (None,) * 24)
    assert rollups.day_summaries([], now) == {}
