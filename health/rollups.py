"""Per-minute rollups written by each batch, folded continuously into hourly ones, and the
uptime and chart figures read from them.

One row per service, environment and minute (not per instance): that is what the charts
and uptime figures show, and it keeps storage at services x buckets, however many
instances and probes there are. Histograms merge exactly, so batches from any number of
workers can add into the same minute.

Storage (docs/health.md, "Storage"): health_rollup_minute is partitioned by hour. Only the
partitions still written keep free space (fillfactor 50, for HOT updates); a finished one is
rewritten packed, and one past a day is dropped whole. Every finished minute is added into
its hour row in health_rollup_hour by fold() soon after it ends; the watermark
(health_rollup_watermark.folded_until) says up to where. Readers take hour rows before the
watermark and minute rows from it, in one statement (one snapshot), so no minute counts twice.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from health.choices import CheckStatus, Resolution
from health.models import HourRollup, MinuteRollup, Transition
from health.models.history import HISTOGRAM_SIZE, LATENCY_BOUNDS_MS

logger = logging.getLogger(__name__)

MINUTE_ROLLUPS_KEPT = timedelta(hours=24)
# A minute is folded once it is this old: batches write a probe's minute when the batch ends
# (seconds later); a write later than this still lands in both tables (see upsert).
FOLD_GRACE = timedelta(minutes=2)
FOLD_JUMP = timedelta(hours=2)
# Partitions made ahead of time by the periodic task (every 10 min) and at migrate time; the
# DEFAULT partition takes anything outside them, so an insert never fails.
PARTITIONS_AHEAD = 3
# A partition is rewritten packed once it ended this long ago (late writes are over).
REWRITE_AFTER = timedelta(minutes=10)
# Partition DDL waits at most this long for its lock, then gives up until the next run
# (instead of queueing every reader behind it).
DDL_LOCK_TIMEOUT = "2s"


@dataclass
class Bucket:
    """Counts gathered in memory for one (service, environment, minute) before the upsert."""

    count: int = 0
    failures: int = 0
    warnings: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)

    def add(self, status: str, latency_ms: float) -> None:
        self.count += 1
        if status == CheckStatus.FAIL:
            # A failure's latency is the time to fail (a refusal, a timeout): not the
            # service's latency, so it stays out of the latency figures.
            self.failures += 1
            return
        if status == CheckStatus.WARN:
            self.warnings += 1
        self.latency_sum_ms += latency_ms
        self.latency_max_ms = max(self.latency_max_ms, latency_ms)
        self.histogram[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    """The first whole hour at or after `moment`."""
    start = hour_of(moment)
    return start if start == moment else start + timedelta(hours=1)


def trimmed(histogram: list[int]) -> list[int]:
    """The histogram as stored: without its trailing empty buckets."""
    end = len(histogram)
    while end and not histogram[end - 1]:
        end -= 1
    return histogram[:end]


def padded(histogram: Iterable[int]) -> list[int]:
    """A stored histogram back at HISTOGRAM_SIZE buckets."""
    counts = list(histogram)
    return counts + [0] * (HISTOGRAM_SIZE - len(counts))


_MERGE = """
  count = r.count + EXCLUDED.count,
  failures = r.failures + EXCLUDED.failures,
  warnings = r.warnings + EXCLUDED.warnings,
  latency_sum_ms = r.latency_sum_ms + EXCLUDED.latency_sum_ms,
  latency_max_ms = GREATEST(r.latency_max_ms, EXCLUDED.latency_max_ms),
  histogram = health_hist_add(r.histogram, EXCLUDED.histogram)
"""
_COLUMNS = (
    "service_id, environment_id, bucket, latency_sum_ms, latency_max_ms, count, failures,"
    " warnings, histogram"
)
_HOURLY = """
SELECT service_id, environment_id, date_trunc('hour', bucket, 'UTC'), sum(latency_sum_ms),
       max(latency_max_ms), sum(count)::integer, sum(failures)::integer,
       sum(warnings)::integer, health_hist_sum(histogram ORDER BY bucket)
FROM {source} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

# One statement per batch. The buckets travel as arrays (the trimmed histograms as one flat
# array, sliced by start and length). A minute the watermark has passed already (a batch
# later than FOLD_GRACE) is added into its hour row too, by the same statement: FOR SHARE
# on the watermark row waits for a fold in progress and then reads the watermark it left,
# and a fold waits for this statement's transaction, so each minute reaches its hour once.
_UPSERT = f"""
WITH v AS MATERIALIZED (
  SELECT u.service_id, u.environment_id, u.bucket, u.latency_sum_ms, u.latency_max_ms,
         u.count, u.failures, u.warnings,
         (%s::integer[])[u.start : u.start + u.len - 1] AS histogram, u.n
  FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::integer[], %s::integer[],
              %s::integer[], %s::double precision[], %s::double precision[], %s::integer[],
              %s::integer[])
       WITH ORDINALITY AS u(service_id, environment_id, bucket, count, failures, warnings,
                            latency_sum_ms, latency_max_ms, start, len, n)
),
wm AS (SELECT folded_until FROM health_rollup_watermark WHERE id = 1 FOR SHARE),
minute AS (
  INSERT INTO health_rollup_minute AS r ({_COLUMNS})
  SELECT {_COLUMNS} FROM v ORDER BY v.n
  ON CONFLICT (service_id, environment_id, bucket) DO UPDATE SET {_MERGE}
)
INSERT INTO health_rollup_hour AS r ({_COLUMNS})
{_HOURLY.format(source="(SELECT v.* FROM v JOIN wm ON v.bucket < wm.folded_until) AS late")}
ON CONFLICT (service_id, environment_id, bucket) DO UPDATE SET {_MERGE}
"""  # noqa: S608 (names are ours; values are parameters)


def upsert(
    buckets: dict[tuple[int, int, datetime], Bucket], resolution: str = Resolution.MINUTE
) -> None:
    """Add the minute buckets into their rows, in key order (a fixed lock order: no deadlocks).

    `resolution` stays for callers of the old signature; only minutes are written (hour rows
    come from fold)."""
    if resolution != Resolution.MINUTE:
        raise ValueError("only minute buckets are written; hour rows come from fold()")
    if not buckets:
        return
    keys = sorted(buckets)
    rows = [buckets[k] for k in keys]
    histograms = [trimmed(b.histogram) for b in rows]
    starts: list[int] = []
    flat: list[int] = []
    for histogram in histograms:
        starts.append(len(flat) + 1)
        flat.extend(histogram)
    params: list[Any] = [
        flat,
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        [b.count for b in rows], [b.failures for b in rows], [b.warnings for b in rows],
        [b.latency_sum_ms for b in rows], [b.latency_max_ms for b in rows],
        starts, [len(h) for h in histograms],
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)


_FOLD = f"""
WITH m AS MATERIALIZED (
  SELECT * FROM health_rollup_minute WHERE bucket >= %s AND bucket < %s
),
h AS (
  INSERT INTO health_rollup_hour AS r ({_COLUMNS})
  {_HOURLY.format(source="m")}
  ON CONFLICT (service_id, environment_id, bucket) DO UPDATE SET {_MERGE}
)
SELECT count(*) FROM m
"""  # noqa: S608 (names are ours; values are parameters)


def fold(now: datetime | None = None) -> int:
    """Add every minute finished FOLD_GRACE ago into its hour row; returns the minute rows
    folded. Idempotent and safe with two workers: the watermark row is locked (FOR UPDATE)
    while it moves, in the same transaction as the hour rows change. At most an hour of
    minutes per transaction (the first fold after the migration has a day to do); a gap of
    more than FOLD_JUMP is skipped to its first minute row."""
    until = minute_of(now or timezone.now()) - FOLD_GRACE
    folded = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            # (the row is made again if a flush emptied the table)
            cursor.execute(
                "INSERT INTO health_rollup_watermark VALUES (1, '1970-01-01 00:00+00')"
                " ON CONFLICT DO NOTHING"
            )
            cursor.execute(
                "SELECT folded_until FROM health_rollup_watermark WHERE id = 1 FOR UPDATE"
            )
            (since,) = cursor.fetchone()
            if since >= until:
                return folded
            if until - since > FOLD_JUMP:  # a fresh database, or one caught up after a stop
                cursor.execute(
                    "SELECT min(bucket) FROM health_rollup_minute WHERE bucket >= %s"
                    " AND bucket < %s",
                    [since, until],
                )
                since = cursor.fetchone()[0] or until
            step = min(until, hour_of(since) + timedelta(hours=1))
            cursor.execute(_FOLD, [since, step])
            folded += cursor.fetchone()[0]
            cursor.execute(
                "UPDATE health_rollup_watermark SET folded_until = %s WHERE id = 1", [step]
            )


def vacuum_hot(now: datetime | None = None) -> bool:
    """VACUUM the partitions being written (this hour's and the last), so each update finds
    room on its page (HOT) instead of a new page: without it the bench's hot hour grew to
    282 MB for 30,000 rows. The hour table too: the fold updates the current hour's rows
    every minute, and without a vacuum each hour row left ~60 dead versions behind (1,248 B
    a row, 15 MB a day for 500 service-environments, bench.rollup_storage). Only pages not
    all-visible are read, so a vacuum of the month's finished hours costs little. Outside a
    transaction only (VACUUM cannot run in one); False when skipped."""
    if connection.in_atomic_block:
        return False
    hour = hour_of((now or timezone.now()).astimezone(UTC))
    with connection.cursor() as cursor:
        names = [n for n, _ in _partitions(cursor).values()]
        hot = [partition_name(hour - timedelta(hours=h)) for h in (0, 1)]
        targets = [n for n in hot if n in names] + ["health_rollup_hour"]
        if targets:
            cursor.execute(f"VACUUM (SKIP_LOCKED) {', '.join(targets)}")
    return bool(targets)


def watermark() -> datetime:
    """Up to where minutes are folded (the epoch: none yet)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT folded_until FROM health_rollup_watermark WHERE id = 1")
        found = cursor.fetchone()
    return found[0] if found else datetime(1970, 1, 1, tzinfo=UTC)


MINUTE_TABLE = "health_rollup_minute"
DEFAULT_PARTITION = "health_rollup_minute_default"


def partition_name(hour: datetime) -> str:
    return f"{MINUTE_TABLE}_p{hour.astimezone(UTC):%Y%m%d%H}"


def _partitions(cursor: Any) -> dict[datetime, tuple[str, bool]]:
    """The hourly partitions: hour -> (name, rewritten packed yet)."""
    cursor.execute(
        """SELECT c.relname, coalesce(c.reloptions @> '{fillfactor=100}', false)
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = %s::regclass AND c.relname <> %s""",
        [MINUTE_TABLE, DEFAULT_PARTITION],
    )
    found = {}
    for name, packed in cursor.fetchall():
        hour = datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m%d%H").replace(tzinfo=UTC)
        found[hour] = (name, packed)
    return found


def partitions() -> dict[datetime, tuple[str, bool]]:
    """The hourly partitions of the minute table: hour -> (name, rewritten packed yet)."""
    with connection.cursor() as cursor:
        return _partitions(cursor)


def ensure_partitions(
    now: datetime | None = None, *, hours_back: int = 1, using: str = "default"
) -> int:
    """Make the hourly partitions from `hours_back` hours ago to PARTITIONS_AHEAD ahead (hot:
    fillfactor 50), moving in what the DEFAULT partition holds for their hours; returns how
    many were made. At migrate time hours_back covers the day of minutes kept."""
    now = (now or timezone.now()).astimezone(UTC)
    conn = connections[using]
    made = 0
    with conn.cursor() as cursor:
        existing = _partitions(cursor)
    for offset in range(-hours_back, PARTITIONS_AHEAD + 1):
        hour = hour_of(now) + timedelta(hours=offset)
        if hour in existing or hour + timedelta(hours=1) <= now - MINUTE_ROLLUPS_KEPT:
            continue
        name, end = partition_name(hour), hour + timedelta(hours=1)
        with transaction.atomic(using=using), conn.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            cursor.execute(
                f"CREATE TABLE {name} (LIKE {MINUTE_TABLE} INCLUDING DEFAULTS"
                " INCLUDING CONSTRAINTS INCLUDING INDEXES) WITH (fillfactor = 50)"
            )
            cursor.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE bucket >= %s AND"  # noqa: S608
                f" bucket < %s RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                [hour, end],
            )
            cursor.execute(
                f"ALTER TABLE {MINUTE_TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
                [hour, end],
            )
        made += 1
    return made


def _ddl(statements: list[str]) -> bool:
    """Run partition DDL in one transaction; False when a lock was not had in time."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            for statement in statements:
                cursor.execute(statement)
    except OperationalError as exc:  # lock_timeout: the next run tries again
        logger.info("rollup partition maintenance postponed: %s", exc)
        return False
    return True


def maintain_partitions(now: datetime | None = None) -> tuple[int, int]:
    """Rewrite finished partitions packed and drop those past a day whose minutes are all
    folded; returns (rewritten, dropped). The DEFAULT partition loses such rows by DELETE."""
    now = (now or timezone.now()).astimezone(UTC)
    expired = min(watermark(), now - MINUTE_ROLLUPS_KEPT)
    with connection.cursor() as cursor:
        partitions = _partitions(cursor)
    rewritten = dropped = 0
    for hour, (name, packed) in sorted(partitions.items()):
        end = hour + timedelta(hours=1)
        if end <= expired:
            dropped += _ddl([f"DROP TABLE {name}"])
        elif not packed and end <= now - REWRITE_AFTER:
            # Packed: 157 B a heap row and 36 B of key, against 450 B a row in the hot
            # partition (bench/RESULTS.md, rollup_storage). The CLUSTER runs in its own
            # transaction: in the ALTER's it still packed at fillfactor 50 (307 B, measured).
            rewritten += _ddl([
                f"ALTER TABLE {name} SET (fillfactor = 100)",
                f"ALTER INDEX {name}_pkey SET (fillfactor = 100)",
            ]) and _ddl([f"CLUSTER {name} USING {name}_pkey"])  # fmt: skip
    _delete_default(expired)
    return rewritten, dropped


def _delete_default(before: datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE bucket < %s", [before])  # noqa: S608


def compact(now: datetime | None = None) -> int:
    """The periodic maintenance (health.tasks.compact_rollups): partitions made ahead, minutes
    folded, finished partitions packed, old ones dropped. Returns the minute rows folded."""
    ensure_partitions(now)
    folded = fold(now)
    maintain_partitions(now)
    return folded


def prune(now: datetime | None = None) -> tuple[int, int]:
    """Delete hour rollups and transitions older than SIGNALBOX_HEALTH_RETENTION_DAYS."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SIGNALBOX_HEALTH_RETENTION_DAYS)
    rollups, _ = HourRollup.objects.filter(bucket__lt=cutoff).delete()
    _delete_default(cutoff)
    transitions, _ = Transition.objects.filter(at__lt=cutoff).delete()
    return rollups, transitions


# Readers: hour rows before the watermark and minute rows, with the watermark, in one
# statement (one snapshot: a fold commits hour rows and watermark together).
_ROWS = """
WITH wm AS (SELECT coalesce((SELECT folded_until FROM health_rollup_watermark WHERE id = 1),
                            '-infinity') AS w),
rows AS (
  SELECT 'h' AS kind, wm.w, r.* FROM health_rollup_hour r, wm
  WHERE {where} AND r.bucket >= %(since_hour)s AND r.bucket < wm.w AND r.bucket < %(until)s
  UNION ALL
  SELECT 'm' AS kind, wm.w, r.* FROM health_rollup_minute r, wm
  WHERE {where} AND r.bucket >= %(since)s AND r.bucket < %(until)s
)
"""
_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


def _in_window(name: str, first: str | None = None) -> str:
    """Rows of window `name` (params name_since, name_first, or the SQL `first`): hours from
    its first whole hour, minutes before that hour and from the watermark on."""
    since, first = f"%({name}_since)s", first or f"%({name}_first)s"
    return (
        f"(kind = 'h' AND bucket >= {first} OR kind = 'm' AND bucket >= {since}"
        f" AND (bucket < {first} OR bucket >= w))"
    )


def _window_params(name: str, since: datetime, first: datetime | None = None) -> dict[str, Any]:
    return {f"{name}_since": since, f"{name}_first": hour_ceil(since) if first is None else first}


def _read(
    where: str, select: str, since: datetime, until: datetime | None, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    sql = _ROWS.format(where=where) + select
    params = {"since": since, "since_hour": hour_of(since), "until": until or _FOREVER, **params}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found: list[tuple[Any, ...]] = cursor.fetchall()
    return found


_PAIR = "r.service_id = %(service)s AND r.environment_id = %(environment)s"


# The window's first hour: from its minutes while they are kept, else the whole hour row.
_FIRST_HOUR = f"""(CASE WHEN EXISTS (SELECT 1 FROM {MINUTE_TABLE} r WHERE {_PAIR}
  AND r.bucket >= %(w_hour)s AND r.bucket < %(w_first)s) THEN %(w_first)s ELSE %(w_hour)s END)"""  # noqa: S608


def probe_counts(service_id: int, environment_id: int, since: datetime) -> tuple[int, int]:
    """(probes, failed) from the minute `since` is in: its hour from the minute rows while
    they are kept (the first day), else the whole hour row (a window is never shorter)."""
    ((total, failed),) = _read(
        _PAIR,
        "SELECT coalesce(sum(count), 0), coalesce(sum(failures), 0) FROM rows"  # noqa: S608
        f" WHERE {_in_window('w', _FIRST_HOUR)}",
        since,
        None,
        {
            "service": service_id,
            "environment": environment_id,
            "w_hour": hour_of(since),
            **_window_params("w", since),
        },
    )
    return int(total), int(failed)


def counts_by_day(
    service_ids: list[int], environment_id: int, since: datetime, until: datetime | None
) -> dict[tuple[int, date], tuple[int, int]]:
    """(service_id, UTC day) -> (probes, failed) over [since, until)."""
    found = _read(
        "r.service_id = ANY(%(services)s) AND r.environment_id = %(environment)s",
        "SELECT service_id, (bucket AT TIME ZONE 'UTC')::date, sum(count), sum(failures)"  # noqa: S608
        f" FROM rows WHERE {_in_window('w')} GROUP BY 1, 2",
        since,
        until,
        {"services": service_ids, "environment": environment_id, **_window_params("w", since)},
    )
    return {(s, day): (int(n), int(f)) for s, day, n, f in found}


def histogram_percentile(histogram: Iterable[int], q: float, maximum: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, interpolated inside its bucket."""
    counts = list(histogram)
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            low = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0
            high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else maximum
            high = min(high, maximum) if maximum else high
            return round(low + (high - low) * max(rank - seen, 0) / n, 2)
        seen += n
    return maximum


@dataclass(frozen=True)
class Point:
    """One bucket of a chart series."""

    at: datetime
    count: int
    failures: int
    warnings: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None

    @property
    def availability(self) -> float | None:
        return None if self.count == 0 else (self.count - self.failures) / self.count


def series(
    service_id: int, environment_id: int, since: datetime, until: datetime, resolution: str
) -> list[Point]:
    """Chart points: minute rows, or hour rows (with the minutes not folded yet) by hour."""
    if resolution == Resolution.MINUTE:
        rows = MinuteRollup.objects.filter(
            service_id=service_id, environment_id=environment_id, bucket__gte=since,
            bucket__lt=until,
        ).order_by("bucket")  # fmt: skip
        return [_point(r.bucket, r) for r in rows]
    found = _read(
        _PAIR,
        "SELECT bucket, count, failures, warnings, latency_max_ms, histogram FROM rows"  # noqa: S608
        f" WHERE {_in_window('w')} ORDER BY bucket",
        since,
        until,
        {"service": service_id, "environment": environment_id, **_window_params("w", since)},
    )
    hours: dict[datetime, Bucket] = defaultdict(Bucket)
    for bucket, count, failures, warnings, latency_max_ms, histogram in found:
        h = hours[hour_of(bucket)]
        h.count += count
        h.failures += failures
        h.warnings += warnings
        h.latency_max_ms = max(h.latency_max_ms, latency_max_ms)
        h.histogram = [a + b for a, b in zip(h.histogram, padded(histogram), strict=True)]
    return [_point(at, h) for at, h in sorted(hours.items())]


def _point(at: datetime, row: MinuteRollup | Bucket) -> Point:
    has_latency = row.count > row.failures
    return Point(
        at=at,
        count=row.count,
        failures=row.failures,
        warnings=row.warnings,
        p50_ms=histogram_percentile(row.histogram, 0.5, row.latency_max_ms),
        p95_ms=histogram_percentile(row.histogram, 0.95, row.latency_max_ms),
        max_ms=row.latency_max_ms if has_latency else None,
    )


UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def _share(n: int, f: int) -> float | None:
    return None if n == 0 else round(100.0 * (n - f) / n, 3)


def uptime(
    service_id: int, environment_id: int, now: datetime | None = None
) -> dict[str, float | None]:
    """Share of probes that did not fail over 24 h, 7 d and 30 d (None: no probes yet)."""
    now = now or timezone.now()
    sums, params = [], {}
    for name, span in UPTIME_WINDOWS.items():
        window = f"u{name}"
        sums.append(f"coalesce(sum(count) FILTER (WHERE {_in_window(window)}), 0)")
        sums.append(f"coalesce(sum(failures) FILTER (WHERE {_in_window(window)}), 0)")
        params.update(_window_params(window, now - span))
    ((*totals,),) = _read(
        _PAIR,
        f"SELECT {', '.join(sums)} FROM rows",  # noqa: S608
        now - max(UPTIME_WINDOWS.values()),
        None,
        {"service": service_id, "environment": environment_id, **params},
    )
    return {
        name: _share(int(totals[2 * i]), int(totals[2 * i + 1]))
        for i, name in enumerate(UPTIME_WINDOWS)
    }


@dataclass(frozen=True)
class DaySummary:
    """A service tile's last day: uptime over 24 h and its hourly mean latency."""

    uptime: float | None  # percent of probes in the last 24 h that did not fail; None: none
    # 24 hourly points, oldest first, ending with the current (partial) hour: the mean latency
    # of the hour's non-failed probes, rounded to 0.1 ms; None for an hour without such probes.
    latency_ms: tuple[float | None, ...]


HOURS = 24  # a tile's sparkline: one point an hour over the last day
NO_PROBES = DaySummary(None, (None,) * HOURS)


def day_summaries(
    pairs: Iterable[tuple[int, int]], now: datetime | None = None
) -> dict[tuple[int, int], DaySummary]:
    """DaySummary of each (service_id, environment_id), in one query whatever their number."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    now = now or timezone.now()
    first_hour = hour_of(now) - timedelta(hours=HOURS - 1)
    found = _read(
        "(r.service_id, r.environment_id) IN"
        " (SELECT * FROM unnest(%(services)s::bigint[], %(environments)s::bigint[]))",
        "SELECT service_id, environment_id, date_trunc('hour', bucket, 'UTC'), sum(count),"  # noqa: S608
        f" sum(failures), sum(latency_sum_ms) FROM rows WHERE {_in_window('d')} GROUP BY 1, 2, 3",
        now - timedelta(hours=24),
        None,
        {
            "services": [s for s, _ in pairs],
            "environments": [e for _, e in pairs],
            **_window_params("d", now - timedelta(hours=24)),
        },
    )
    probes: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    latency: dict[tuple[int, int], list[float | None]] = defaultdict(lambda: [None] * HOURS)
    for service_id, environment_id, hour, count, failures, latency_sum in found:
        key = (service_id, environment_id)
        probes[key][0] += count
        probes[key][1] += failures
        index = int((hour - first_hour) / timedelta(hours=1))
        if 0 <= index < HOURS and count > failures:
            latency[key][index] = round(latency_sum / (count - failures), 1)
    return {
        key: DaySummary(_share(*probes[key]), tuple(latency[key])) if key in probes else NO_PROBES
        for key in pairs
    }
