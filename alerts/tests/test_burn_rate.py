"""SLO burn rate against hand-worked examples (Google SRE workbook, chapter 5)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import pytest

from alerts.history import seconds_up
from alerts.rules.slo import Window, burn_rate, burning_window

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PAGE = [Window(3600, 300, 14.4), Window(21600, 1800, 6.0)]


def test_it_burns_at_one_when_errors_use_exactly_the_budget() -> None:
    # 99.9 %: 1 bad second in 1000 spends the budget exactly as fast as allowed
    assert burn_rate(999, 1000, 0.999) == pytest.approx(1.0)


def test_it_burns_at_fourteen_point_four_with_1_44_percent_errors() -> None:
    # 1.44 % errors / 0.1 % budget = 14.4
    assert burn_rate(98.56, 100, 0.999) == pytest.approx(14.4)


def test_it_does_not_burn_without_data() -> None:
    assert burn_rate(0, 0, 0.999) == 0.0


def counts_from(table: Mapping[int, tuple[float, float]]) -> Callable[[int], tuple[float, float]]:
    return lambda seconds: table[seconds]


def test_it_pages_when_both_the_hour_and_the_last_five_minutes_burn_fast() -> None:
    # given 52 s down in the last hour (1.44 % -> 14.44x) and 5 s in the last 5 min (16.7x)
    table = {3600: (3548.0, 3600.0), 300: (295.0, 300.0), 21600: (21548, 21600), 1800: (1795, 1800)}
    # when / then the 1h/5m pair fires
    found = burning_window(PAGE, counts_from(table), 0.999)
    assert found is not None
    window, long_rate, short_rate = found
    assert window == PAGE[0]
    assert long_rate == pytest.approx(52 / 3600 / 0.001)
    assert short_rate == pytest.approx(5 / 300 / 0.001)


def test_it_does_not_page_for_an_outage_that_is_over() -> None:
    # given the same bad hour, but the last 5 minutes were clean: the short window says stop
    table = {3600: (3548.0, 3600.0), 300: (300.0, 300.0), 21600: (21548, 21600), 1800: (1800, 1800)}
    assert burning_window(PAGE, counts_from(table), 0.999) is None


def test_it_pages_on_the_six_hour_pair_for_a_slower_burn() -> None:
    # given 6 h at 0.65 % errors (6.5x) with the last 30 min at 0.7 % (7x); the hour is 0.65 %
    table = {
        3600: (3576.6, 3600),
        300: (298.05, 300),
        21600: (21459.6, 21600),
        1800: (1787.4, 1800),
    }
    found = burning_window(PAGE, counts_from(table), 0.999)
    assert found is not None and found[0] == PAGE[1]


def test_it_counts_time_down_as_bad_and_unknown_as_nothing() -> None:
    # given healthy for 10 min, down for 2, unknown for 3, degraded for 5 (a 20 min window)
    changes = [
        (T0 + timedelta(minutes=10), "down"),
        (T0 + timedelta(minutes=12), "unknown"),
        (T0 + timedelta(minutes=15), "degraded"),
    ]
    good, total = seconds_up("healthy", changes, T0, T0 + timedelta(minutes=20))
    # then good = 10 + 5 min, total = good + 2 min down
    assert (good, total) == (900.0, 1020.0)


def test_it_starts_from_the_state_before_the_window() -> None:
    # given it went down before the window and came back 1 minute into it
    changes = [(T0 - timedelta(minutes=5), "down"), (T0 + timedelta(minutes=1), "healthy")]
    good, total = seconds_up(None, changes, T0, T0 + timedelta(minutes=10))
    assert (good, total) == (540.0, 600.0)
