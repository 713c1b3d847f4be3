"""Recurring freeze schedules: weekly local wall-clock windows in an IANA time zone.

A schedule is a set of weekdays, a local start time and a duration in minutes. Each chosen
day has one occurrence starting at that local time; it ends `duration` minutes of wall-clock
time later, in the same zone, so "Fri 16:00 for 64h" ends Monday 08:00 local even when the
clocks change over the weekend. A local time that does not exist (skipped when the clocks
go forward) is the moment they jump (02:30 becomes 03:00 in Europe/Berlin); an ambiguous
one (the hour repeated when they go back) is its first occurrence. An occurrence that
falls wholly inside the skipped hour does not happen that day. Pure functions: no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

from deployments.choices import WEEKDAYS

MINUTES_PER_DAY = 24 * 60
MAX_DURATION_MINUTES = 7 * MINUTES_PER_DAY  # longer would overlap the next week's occurrence


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or ValueError saying why it is not one."""
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone name (like Europe/Berlin or UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown IANA time zone {name!r}; use a name like Europe/Berlin or UTC"
        ) from None


def validate_timezone(name: str) -> None:
    try:
        zone(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def normalize_day(value: object) -> str:
    """'fri', 'Fri' or 'friday' → 'fri'; ValueError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        for day in WEEKDAYS:
            if text in (day, _FULL[day]):
                return day
    raise ValueError(f"{value!r} is not a day of the week; use mon, tue, wed, thu, fri, sat or sun")


_FULL = {
    "mon": "monday",
    "tue": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
}


def validate_days(days: Iterable[object]) -> None:
    days = list(days)
    if not days:
        raise ValidationError("name at least one day of the week")
    seen: set[str] = set()
    for day in days:
        if day not in WEEKDAYS:
            raise ValidationError(
                f"{day!r} is not a day of the week; use mon, tue, wed, thu, fri, sat or sun"
            )
        if day in seen:
            raise ValidationError(f"{day} is listed twice")
        seen.add(day)


def validate_duration(minutes: int) -> None:
    if minutes < 1:
        raise ValidationError("must be at least 1 minute")
    if minutes > MAX_DURATION_MINUTES:
        raise ValidationError(
            f"must be at most {MAX_DURATION_MINUTES} minutes (a week); a longer window "
            "would overlap its own next occurrence"
        )


def occurrence_on(
    day: date, start: time, minutes: int, tz: ZoneInfo
) -> tuple[datetime, datetime] | None:
    """(start, end) in UTC of the occurrence that starts on local date `day`.

    None when the occurrence is empty: only a window shorter than a clock change that falls
    inside the skipped hour.
    """
    begins = datetime.combine(day, start)
    start_utc = to_utc(begins, tz)
    end_utc = to_utc(begins + timedelta(minutes=minutes), tz)
    return (start_utc, end_utc) if end_utc > start_utc else None


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of naive local wall time `local` (see the module doc for gaps)."""
    earlier = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if earlier.astimezone(tz).replace(tzinfo=None) == local:
        return earlier  # exists (the first of two, when ambiguous)
    # In a gap: fold=1 reads it with the offset after the jump, which lands before the
    # jump; fold=0 with the one before, which lands after. Bisect to the jump itself.
    low = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = earlier
    offset = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def occurrences(
    days: Iterable[str], start: time, minutes: int, tz: ZoneInfo, first: date, last: date
) -> Iterator[tuple[datetime, datetime]]:
    """Occurrences starting on local dates first..last (inclusive), in order."""
    wanted = {WEEKDAYS.index(d) for d in days if d in WEEKDAYS}
    day = first
    while day <= last:
        if day.weekday() in wanted:
            found = occurrence_on(day, start, minutes, tz)
            if found is not None:
                yield found
        day += timedelta(days=1)


def covering(
    days: Iterable[str], start: time, minutes: int, tz_name: str, at: datetime
) -> tuple[datetime, datetime] | None:
    """The occurrence covering instant `at` (start <= at < end), the latest-ending if several."""
    tz = zone(tz_name)
    today = at.astimezone(tz).date()
    # An occurrence covering `at` started at most `minutes` (plus a clock change) ago.
    first = today - timedelta(days=minutes // MINUTES_PER_DAY + 1)
    found = [o for o in occurrences(days, start, minutes, tz, first, today) if o[0] <= at < o[1]]
    return max(found, key=lambda o: o[1]) if found else None


def next_start(
    days: Iterable[str], start: time, minutes: int, tz_name: str, at: datetime
) -> datetime | None:
    """The start of the first occurrence beginning after `at`."""
    tz = zone(tz_name)
    today = at.astimezone(tz).date()
    for begins, _ends in occurrences(days, start, minutes, tz, today, today + timedelta(days=8)):
        if begins > at:
            return begins
    return None


def duration_label(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}m"
    return f"{hours}h{rest:02d}m" if rest else f"{hours}h"


def schedule_label(days: Iterable[str], start: time, minutes: int, tz_name: str) -> str:
    """'every fri 16:00 for 64h, Europe/Berlin'."""
    ordered = [d for d in WEEKDAYS if d in set(days)]
    which = "every day" if len(ordered) == 7 else "every " + ", ".join(ordered)
    return f"{which} {start:%H:%M} for {duration_label(minutes)}, {tz_name}"


def utc_iso(at: datetime) -> str:
    """'2025-03-31T06:00:00Z'."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def local_label(at: datetime, tz_name: str) -> str:
    """'Mon 2025-03-31 08:00 CEST, Europe/Berlin' ('Mon 2025-03-31 06:00 UTC' in UTC)."""
    local = at.astimezone(zone(tz_name))
    label = f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
    return label if local.tzname() == tz_name else f"{label}, {tz_name}"
