"""A tile's day: 24-hour uptime and hourly latency for many services in one query.

Rollups are written through the real write path (`health.rollups.upsert`), as the probe
batches write them, so these tests hold whatever the rollups' storage looks like.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog.models import Service
from health import rollups
from health.rollups import HOURS, Bucket, DaySummary, day_summaries

pytestmark = pytest.mark.django_db
# 20 minutes into an hour: the current hour is partial.
NOW = datetime(2026, 12, 4, 15, 20, tzinfo=UTC)


def probes(service: Any, environment: Any, at: datetime, *results: tuple[str, float]) -> None:
    """Probe results landing in `at`'s minute rollup, as a probe batch writes them."""
    bucket = Bucket()
    for status, latency in results:
        bucket.add(status, latency)
    rollups.upsert({(service.pk, environment.pk, rollups.minute_of(at)): bucket})


def hours_ago(hours: int, minute: int = 0) -> datetime:
    return rollups.hour_of(NOW) - timedelta(hours=hours) + timedelta(minutes=minute)


def test_each_point_is_an_hours_mean_latency_oldest_first_ending_with_this_hour(
    world: Any,
) -> None:
    # given probes two hours ago (in two minutes), 23 hours ago, and in this partial hour
    checkout = (world.service, world.production)
    probes(*checkout, hours_ago(2, 5), ("pass", 10.0), ("pass", 20.0))
    probes(*checkout, hours_ago(2, 40), ("warn", 60.0))
    probes(*checkout, hours_ago(23, 1), ("pass", 7.0))
    probes(*checkout, NOW - timedelta(minutes=1), ("pass", 31.0))
    # when the day is summed up
    day = day_summaries([(world.service.pk, world.production.pk)], now=NOW)[
        (world.service.pk, world.production.pk)
    ]
    # then 24 points: the oldest is 23 h ago, the last is the current hour, gaps are None
    assert len(day.latency_ms) == HOURS
    assert day.latency_ms[0] == 7.0
    assert day.latency_ms[HOURS - 1 - 2] == 30.0  # (10 + 20 + 60) / 3: warnings count
    assert day.latency_ms[-1] == 31.0
    assert [i for i, p in enumerate(day.latency_ms) if p is not None] == [0, 21, 23]
    assert day.uptime == 100.0


def test_failures_lower_uptime_and_stay_out_of_latency(world: Any) -> None:
    # given an hour with 3 passes and 1 failure (a 5 s timeout), and an hour of failures only
    checkout = (world.service, world.production)
    probes(*checkout, hours_ago(1, 10), ("pass", 10.0), ("pass", 11.0), ("pass", 12.0))
    probes(*checkout, hours_ago(1, 11), ("fail", 5000.0))
    probes(*checkout, hours_ago(4, 0), ("fail", 1.0), ("fail", 1.0))
    # when summed up
    day = day_summaries([(world.service.pk, world.production.pk)], now=NOW)[
        (world.service.pk, world.production.pk)
    ]
    # then uptime counts every probe, as the service page's 24 h figure does
    assert day.uptime == round(100 * 3 / 6, 3) == 50.0
    assert day.uptime == rollups.uptime(world.service.pk, world.production.pk, NOW)["24h"]
    # and the latency is the passes' only; the hour of failures has no point
    assert day.latency_ms[-2] == 11.0
    assert day.latency_ms[-5] is None


def test_means_are_rounded_to_a_tenth_and_uptime_to_a_thousandth(world: Any) -> None:
    checkout = (world.service, world.production)
    probes(*checkout, hours_ago(0, 2), ("pass", 10.04), ("pass", 10.08), ("pass", 10.1))
    probes(*checkout, hours_ago(0, 3), *([("pass", 1.0)] * 2997), ("fail", 1.0))
    day = day_summaries([(world.service.pk, world.production.pk)], now=NOW)[
        (world.service.pk, world.production.pk)
    ]
    assert day.uptime == 99.967  # 2999 of 3000 did not fail
    assert day.latency_ms[-1] == round((10.04 + 10.08 + 10.1 + 2997) / 3000, 1) == 1.0
    alone = (world.other_service, world.production)
    probes(*alone, hours_ago(0, 2), ("pass", 10.04), ("pass", 10.08), ("pass", 10.1))
    other = day_summaries([(world.other_service.pk, world.production.pk)], now=NOW)
    assert other[(world.other_service.pk, world.production.pk)].latency_ms[-1] == 10.1


def test_only_the_last_24_hours_count_and_the_hour_before_the_first_point_counts_in_uptime(
    world: Any,
) -> None:
    # given failures 25 h and 24 h 5 min ago (too old), one 23 h 50 min ago (in the uptime
    # window, but in the hour before the sparkline's first point) and a pass now
    checkout = (world.service, world.production)
    probes(*checkout, NOW - timedelta(hours=25), ("fail", 1.0))
    probes(*checkout, NOW - timedelta(hours=24, minutes=5), ("fail", 1.0))
    probes(*checkout, NOW - timedelta(hours=23, minutes=50), ("fail", 1.0), ("pass", 9.0))
    probes(*checkout, NOW, ("pass", 5.0))
    # when summed up, before and after the nightly compaction folds old minutes into hours
    pair = (world.service.pk, world.production.pk)
    before = day_summaries([pair], now=NOW)[pair]
    rollups.compact(now=NOW)
    after = day_summaries([pair], now=NOW)[pair]
    # then uptime is 2 of 3, like the service page's; no point for the hour before the first
    assert before == after
    assert before.uptime == 66.667 == rollups.uptime(*pair, NOW)["24h"]
    assert before.latency_ms == (None,) * 23 + (5.0,)


def test_a_pair_without_rollups_has_no_uptime_and_no_points(world: Any) -> None:
    # given rollups for checkout in production only
    probes(world.service, world.production, NOW, ("pass", 5.0))
    # when asked for checkout in staging and indexer in production too
    pairs = [
        (world.service.pk, world.production.pk),
        (world.service.pk, world.staging.pk),
        (world.other_service.pk, world.production.pk),
    ]
    days = day_summaries(pairs, now=NOW)
    # then each pair asked for has a summary; those without rows have nothing to show
    assert set(days) == set(pairs)
    assert days[pairs[0]].latency_ms[-1] == 5.0
    assert days[pairs[1]] == days[pairs[2]] == DaySummary(None, (None,) * 24)
    assert day_summaries([], now=NOW) == {}


def test_hundreds_of_pairs_cost_at_most_two_queries(
    world: Any, django_assert_max_num_queries: Any
) -> None:
    # given 300 services, each with probes in a few hours of the day
    services = Service.objects.bulk_create(
        [Service(slug=f"svc-{i}", name=f"Service {i}", team=world.team) for i in range(300)]
    )
    buckets = {}
    for i, service in enumerate(services):
        for hours in (0, 5, 12):
            bucket = Bucket()
            bucket.add("pass", float(i + hours))
            if i % 3 == 0:
                bucket.add("fail", 1.0)
            buckets[(service.pk, world.production.pk, hours_ago(hours, 1))] = bucket
    rollups.upsert(buckets)
    pairs = [(s.pk, world.production.pk) for s in services]
    # when the page asks for all of them
    with django_assert_max_num_queries(2):
        days = day_summaries(iter(pairs), now=NOW)
    # then each has its own figures
    assert len(days) == 300
    for i, pair in enumerate(pairs):
        assert days[pair].uptime == (50.0 if i % 3 == 0 else 100.0)
        assert days[pair].latency_ms[-1] == float(i)
        assert days[pair].latency_ms[-13] == float(i + 12)
