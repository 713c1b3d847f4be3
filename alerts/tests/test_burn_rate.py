"""SLO burn rate against hand-worked examples (Google SRE workbook, chapter 5), first on
plain numbers, then end to end from health's probe rollups through every team's default
SLO rules to incidents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from alerts.choices import IncidentState, Severity
from alerts.defaults import DEFAULT_RULES
from alerts.evaluation import sweep_rules
from alerts.models import Incident
from alerts.rules.slo import Window, burn_rate, burning_window
from health.models import HourRollup

PAGE = [Window(3600, 300, 14.4), Window(21600, 1800, 6.0)]


def test_it_burns_at_one_when_errors_use_exactly_the_budget() -> None:
    # 99.9 %: 1 bad probe in 1000 spends the budget exactly as fast as allowed
    assert burn_rate(999, 1000, 0.999) == pytest.approx(1.0)


def test_it_burns_at_fourteen_point_four_with_1_44_percent_errors() -> None:
    # 1.44 % errors / 0.1 % budget = 14.4
    assert burn_rate(9856, 10000, 0.999) == pytest.approx(14.4)


def test_it_does_not_burn_without_data() -> None:
    assert burn_rate(0, 0, 0.999) == 0.0


def counts_from(table: Mapping[int, tuple[int, int]]) -> Callable[[int], tuple[int, int]]:
    return lambda seconds: table[seconds]


def test_it_pages_when_both_the_hour_and_the_last_five_minutes_burn_fast() -> None:
    # given 52 failed probes of 3600 in the hour (14.4x) and 5 of 300 in the last 5 min (16.7x)
    table = {3600: (3548, 3600), 300: (295, 300), 21600: (21548, 21600), 1800: (1795, 1800)}
    # when / then the 1h/5m pair fires
    found = burning_window(PAGE, counts_from(table), 0.999)
    assert found is not None
    window, long_rate, short_rate = found
    assert window == PAGE[0]
    assert long_rate == pytest.approx(52 / 3600 / 0.001)
    assert short_rate == pytest.approx(5 / 300 / 0.001)


def test_it_does_not_page_for_an_outage_that_is_over() -> None:
    # given the same bad hour, but the last 5 minutes were clean: the short window says stop
    table = {3600: (3548, 3600), 300: (300, 300), 21600: (21548, 21600), 1800: (1800, 1800)}
    assert burning_window(PAGE, counts_from(table), 0.999) is None


def test_it_pages_on_the_six_hour_pair_for_a_slower_burn() -> None:
    # given 6 h at 0.65 % errors (6.5x) with the last 30 min at 0.7 % (7x); the hour is 0.65 %
    table = {3600: (35766, 36000), 300: (2981, 3000), 21600: (214596, 216000), 1800: (17874, 18000)}
    found = burning_window(PAGE, counts_from(table), 0.999)
    assert found is not None and found[0] == PAGE[1]


# End to end. Checkout runs 3 instances probed every 10 s: 18 probes a minute. `NOW` is a
# minute boundary and the newest rollup is the minute before it, so a window of N minutes
# reads exactly N minute buckets (older than a day: hourly rows of 1080 probes).
PROBES_PER_MINUTE = 18


@pytest.fixture
def slo(world: Any) -> Any:
    """Three days of checkout's probes in production as health writes them, and a way to add
    failures; the team's default rules only (SLO fast burn pages, slow burn tickets)."""
    from health import rollups
    from health.models.history import HISTOGRAM_SIZE

    assert {key for key, *_ in DEFAULT_RULES} >= {"slo-fast-burn", "slo-slow-burn"}
    now = rollups.minute_of(timezone.now())

    class History:
        at = now

        def probes(self, minutes_ago: range, failures: Callable[[int], int]) -> None:
            """Add one minute of probes for each minute in `minutes_ago` (1 is the newest)."""
            buckets = {}
            for ago in minutes_ago:
                bucket = rollups.Bucket(
                    count=PROBES_PER_MINUTE,
                    failures=failures(ago),
                    histogram=[0] * HISTOGRAM_SIZE,
                )
                bucket.histogram[3] = PROBES_PER_MINUTE - bucket.failures
                minute = now - timedelta(minutes=ago)
                buckets[(world.service.pk, world.production.pk, minute)] = bucket
            rollups.upsert(buckets)

        def compact(self) -> None:
            """What health's fold and compaction tasks do: finished minutes into hours."""
            while rollups.compact(now):
                pass

    return History()


def sweep(at: datetime) -> dict[str, Incident]:
    sweep_rules(at)
    return {i.rule.default_key: i for i in Incident.objects.select_related("rule")}


def clean_days(slo: Any, failures: Callable[[int], int] = lambda _: 0) -> None:
    """Three days of history ending a minute before NOW, older than a day compacted."""
    slo.probes(range(1, 3 * 24 * 60 + 1), failures)
    slo.compact()


@pytest.mark.django_db
def test_a_fast_burn_pages_and_resolves_once_the_last_five_minutes_are_clean(slo: Any) -> None:
    # given three clean days, then one of three instances failing for the last 3 minutes:
    # 18 failed probes; 1 h = 60 x 18 = 1080 probes (1.67 % -> 16.7x), 5 min = 90 (20 % -> 200x)
    clean_days(slo, lambda ago: 6 if ago <= 3 else 0)
    # when the clock sweeps the SLO rules
    incidents = sweep(slo.at)
    # then the fast-burn rule pages, naming both windows; the 3-day ticket stays quiet
    # (18 of 77,760 probes is 0.23x)
    page = incidents["slo-fast-burn"]
    assert page.state == IncidentState.FIRING
    assert page.severity == Severity.PAGE
    assert page.subject_label == "checkout in production"
    assert page.reason == "burn rate 16.7x over 1h and 200.0x over 5m (threshold 14.4x)"
    assert "slo-slow-burn" not in incidents
    # when 5 clean minutes follow
    slo.probes(range(-4, 1), lambda _: 0)
    incidents = sweep(slo.at + timedelta(minutes=5))
    # then the page resolves by itself (the hour still burns at 16.7x, the 5 minutes do not)
    assert incidents["slo-fast-burn"].state == IncidentState.RESOLVED


@pytest.mark.django_db
def test_an_outage_that_is_over_does_not_page(slo: Any) -> None:
    # given the same 18 failed probes, but 20 minutes ago: the hour burns, the 5 minutes not
    clean_days(slo, lambda ago: 6 if 18 <= ago <= 20 else 0)
    # when swept, then nothing opens
    assert sweep(slo.at) == {}


@pytest.mark.django_db
def test_a_steady_slow_burn_pages_on_the_six_hour_pair(slo: Any) -> None:
    # given one failed probe every 6 minutes for 6 h: 60 of 6480 (0.93 % -> 9.3x); the last
    # 30 min have 5 of 540 (9.3x); the last hour 10 of 1080 (9.3x, under 14.4)
    clean_days(slo, lambda ago: 1 if ago <= 360 and ago % 6 == 0 else 0)
    incidents = sweep(slo.at)
    page = incidents["slo-fast-burn"]
    assert page.state == IncidentState.FIRING
    assert page.reason == "burn rate 9.3x over 6h and 9.3x over 30m (threshold 6x)"
    # and over 3 days 60 of 77,760 (0.08x) is no ticket
    assert "slo-slow-burn" not in incidents


@pytest.mark.django_db
def test_a_budget_spent_over_days_opens_a_ticket_from_hourly_history(slo: Any) -> None:
    # given one failed probe every 10 minutes for three days: 1 in 180, 0.56 % -> 5.6x, under
    # both page thresholds; two days of it live only in hourly rows (6 of 1080 an hour)
    clean_days(slo, lambda ago: 1 if ago % 10 == 0 else 0)
    assert HourRollup.objects.count() >= 47
    # when swept
    incidents = sweep(slo.at)
    # then a ticket, from the 3-day and 6-hour windows; no page
    ticket = incidents["slo-slow-burn"]
    assert ticket.state == IncidentState.FIRING
    assert ticket.severity == Severity.TICKET
    assert ticket.reason == "burn rate 5.6x over 3d and 5.6x over 6h (threshold 1x)"
    assert "slo-fast-burn" not in incidents


@pytest.mark.django_db
def test_a_service_without_probes_is_not_judged(slo: Any) -> None:
    # given no rollups at all (no instance ever probed)
    # when swept, then there is nothing to judge and no incident
    assert sweep(slo.at) == {}
