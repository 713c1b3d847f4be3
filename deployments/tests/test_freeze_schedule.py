"""Is-frozen for recurring windows: midnight and week wrap, clock changes, as tables and
properties (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from deployments.choices import WEEKDAYS
from deployments.schedule import (
    covering,
    local_label,
    next_start,
    normalize_day,
    to_utc,
    validate_days,
    validate_duration,
    zone,
)

BERLIN = "Europe/Berlin"
WEEKEND = (["fri"], time(16, 0), 64 * 60, BERLIN)  # Fri 16:00 → Mon 08:00 local
NIGHTLY = (WEEKDAYS, time(22, 0), 8 * 60, BERLIN)  # every day 22:00 → 06:00 local


def z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(BERLIN))


@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [
        # the weekend window in winter (CET, UTC+1)
        (WEEKEND, berlin("2025-01-03T15:59"), None),
        (WEEKEND, berlin("2025-01-03T16:00"), ("2025-01-03T15:00Z", "2025-01-06T07:00Z")),
        (WEEKEND, berlin("2025-01-04T12:00"), ("2025-01-03T15:00Z", "2025-01-06T07:00Z")),
        # across the end of the week: Sunday night into Monday
        (WEEKEND, berlin("2025-01-05T23:59"), ("2025-01-03T15:00Z", "2025-01-06T07:00Z")),
        (WEEKEND, berlin("2025-01-06T07:59"), ("2025-01-03T15:00Z", "2025-01-06T07:00Z")),
        (WEEKEND, berlin("2025-01-06T08:00"), None),
        (WEEKEND, berlin("2025-01-08T12:00"), None),
        # clocks go forward on Sunday 2025-03-30: still ends Monday 08:00 local (63 h)
        (WEEKEND, z("2025-03-31T05:59Z"), ("2025-03-28T15:00Z", "2025-03-31T06:00Z")),
        (WEEKEND, z("2025-03-31T06:00Z"), None),
        (WEEKEND, z("2025-03-31T06:30Z"), None),  # 08:30 CEST (07:30 had it been 64 h)
        # clocks go back on Sunday 2025-10-26: starts 16:00 CEST, ends 08:00 CET (65 h)
        (WEEKEND, z("2025-10-24T13:59Z"), None),
        (WEEKEND, z("2025-10-24T14:00Z"), ("2025-10-24T14:00Z", "2025-10-27T07:00Z")),
        (WEEKEND, z("2025-10-27T06:30Z"), ("2025-10-24T14:00Z", "2025-10-27T07:00Z")),
        (WEEKEND, z("2025-10-27T07:00Z"), None),
        # every day 22:00 → 06:00: across midnight
        (NIGHTLY, berlin("2025-01-07T21:59"), None),
        (NIGHTLY, berlin("2025-01-07T22:00"), ("2025-01-07T21:00Z", "2025-01-08T05:00Z")),
        (NIGHTLY, berlin("2025-01-08T00:30"), ("2025-01-07T21:00Z", "2025-01-08T05:00Z")),
        (NIGHTLY, berlin("2025-01-08T05:59"), ("2025-01-07T21:00Z", "2025-01-08T05:00Z")),
        (NIGHTLY, berlin("2025-01-08T06:00"), None),
        # Sunday night into Monday (the week's wrap) for a daily window
        (NIGHTLY, berlin("2025-01-06T01:00"), ("2025-01-05T21:00Z", "2025-01-06T05:00Z")),
        # the nights the clocks change: 22:00 CET → 06:00 CEST is 7 h, the other way 9 h
        (NIGHTLY, z("2025-03-30T03:59Z"), ("2025-03-29T21:00Z", "2025-03-30T04:00Z")),
        (NIGHTLY, z("2025-03-30T04:00Z"), None),
        (NIGHTLY, z("2025-10-26T04:59Z"), ("2025-10-25T20:00Z", "2025-10-26T05:00Z")),
        (NIGHTLY, z("2025-10-26T05:00Z"), None),
        # a start in the skipped hour begins when the clocks jump (02:30 → 03:00 CEST)
        ((["sun"], time(2, 30), 60, BERLIN), z("2025-03-30T00:59Z"), None),
        (
            (["sun"], time(2, 30), 60, BERLIN),
            z("2025-03-30T01:00Z"),
            ("2025-03-30T01:00Z", "2025-03-30T01:30Z"),
        ),
        # an ambiguous start is the first of the two 02:30s
        (
            (["sun"], time(2, 30), 60, BERLIN),
            z("2025-10-26T00:30Z"),
            ("2025-10-26T00:30Z", "2025-10-26T02:30Z"),  # ends 03:30 CET: 2 h that night
        ),
        # a whole-week window on one day is always on
        (
            (["mon"], time(0, 0), 7 * 24 * 60, "UTC"),
            z("2025-01-12T23:59Z"),
            ("2025-01-06T00:00Z", "2025-01-13T00:00Z"),
        ),
        # another zone: New York's weekend, across its own clock change (2025-03-09)
        (
            (["fri"], time(18, 0), 62 * 60, "America/New_York"),
            z("2025-03-10T11:59Z"),
            ("2025-03-07T23:00Z", "2025-03-10T12:00Z"),
        ),
    ],
)
def test_covering_occurrence(
    window: tuple[list[str], time, int, str], at: datetime, expected: tuple[str, str] | None
) -> None:
    days, start, minutes, tz = window
    found = covering(days, start, minutes, tz, at)
    if expected is None:
        assert found is None
    else:
        assert found == (z(expected[0]), z(expected[1]))


def test_next_start_crosses_the_week() -> None:
    # given Monday noon, the weekend window starts next on Friday 16:00 local
    assert next_start(*WEEKEND, berlin("2025-01-06T12:00")) == z("2025-01-10T15:00Z")
    # and during an occurrence, the next one is a week after its start
    assert next_start(*WEEKEND, berlin("2025-01-04T12:00")) == z("2025-01-10T15:00Z")


def test_local_label_names_the_zone_and_its_abbreviation() -> None:
    assert local_label(z("2025-03-31T06:00Z"), BERLIN) == "Mon 2025-03-31 08:00 CEST, Europe/Berlin"


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    days=st.sets(st.sampled_from(WEEKDAYS), min_size=1),
    start=st.times(),
    minutes=st.integers(min_value=1, max_value=7 * 24 * 60),
    tz=st.sampled_from(ZONES),
    at=instants,
)
def test_covering_agrees_with_the_local_calendar(
    days: set[str], start: time, minutes: int, tz: str, at: datetime
) -> None:
    # given any weekly window and instant
    start = start.replace(microsecond=0)
    found = covering(sorted(days), start, minutes, tz, at)
    # then it is frozen exactly when some occurrence, built from the local calendar, covers it
    zone_info = ZoneInfo(tz)
    local_day = at.astimezone(zone_info).date()
    brute = []
    for back in range(0, 9):
        day = local_day - timedelta(days=back)
        if WEEKDAYS[day.weekday()] not in days:
            continue
        begins = datetime.combine(day, start)
        s, e = to_utc(begins, zone_info), to_utc(begins + timedelta(minutes=minutes), zone_info)
        if s <= at < e:
            brute.append((s, e))
    assert (found is not None) == bool(brute)
    if found is not None:
        begins, ends = found
        assert begins <= at < ends
        # an occurrence starts on one of its days at its local time (or when the clocks
        # jump over that time), and lasts its wall-clock minutes give or take a clock change
        local = begins.astimezone(zone_info)
        assert WEEKDAYS[local.date().weekday()] in days
        assert (
            local.time() == start or local.utcoffset() != (local - timedelta(hours=3)).utcoffset()
        )
        assert abs((ends - begins).total_seconds() - minutes * 60) <= 2 * 3600


@settings(max_examples=200, deadline=None)
@given(
    days=st.sets(st.sampled_from(WEEKDAYS), min_size=1),
    start=st.times(),
    minutes=st.integers(min_value=1, max_value=7 * 24 * 60),
    tz=st.sampled_from(ZONES),
    at=instants,
)
def test_a_freeze_lasts_until_its_end_and_not_after(
    days: set[str], start: time, minutes: int, tz: str, at: datetime
) -> None:
    start = start.replace(microsecond=0)
    found = covering(sorted(days), start, minutes, tz, at)
    if found is None:
        # not frozen: the next occurrence starts later
        upcoming = next_start(sorted(days), start, minutes, tz, at)
        assert upcoming is not None and upcoming > at
        return
    _, ends = found
    # frozen just before the end; just after it only if another occurrence takes over
    assert covering(sorted(days), start, minutes, tz, ends - timedelta(seconds=1)) is not None
    after = covering(sorted(days), start, minutes, tz, ends)
    assert after is None or after[1] > ends


@pytest.mark.parametrize(
    ("check", "value", "words"),
    [
        (zone, "Mars/Olympus_Mons", "unknown IANA time zone"),
        (zone, "", "not an IANA time zone"),
        (zone, "../etc/passwd", "not an IANA time zone"),
        (normalize_day, "funday", "not a day of the week"),
        (normalize_day, 5, "not a day of the week"),
    ],
)
def test_bad_zone_and_day_names_are_refused(check: object, value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check(value)  # type: ignore[operator]


def test_day_names_and_durations() -> None:
    assert [normalize_day(d) for d in ("FRI", "friday", " mon ")] == ["fri", "fri", "mon"]
    with pytest.raises(ValidationError, match="at least one day"):
        validate_days([])
    with pytest.raises(ValidationError, match="twice"):
        validate_days(["fri", "fri"])
    with pytest.raises(ValidationError, match="at least 1 minute"):
        validate_duration(0)
    with pytest.raises(ValidationError, match="at most 10080"):
        validate_duration(10081)
