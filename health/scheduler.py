"""The scheduler: claim due checks with a lease, probe a batch in one asyncio loop, write in bulk.

Level-triggered, as ARCHITECTURE.md says: the due time lives in each InstanceCheck row.
`claim_due()` (run every second by beat) locks due rows with SKIP LOCKED, stamps a lease
and hands out their ids; `run_batch(ids)` probes them, each at its own due time, and
writes every result, the next due time and the lease release in one statement. A batch
whose worker died leaves its rows leased; once the lease runs out they are claimed again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from catalog.models import Instance
from controlplane.events import publish
from health import derive
from health.choices import CheckStatus, HealthEvent, TransitionLevel
from health.maintenance import MaintenanceCalendar
from health.metrics import record_probes
from health.models import CheckSpec, InstanceCheck, Transition
from health.probes import ProbeResult
from health.probes.runtime import runtime
from health.rollups import Bucket, minute_of, upsert
from health.specs import DEFAULT_SPEC, MAX_TIMEOUT_SECONDS, ProbeSpec
from health.states import UP, CheckState, advance

logger = logging.getLogger(__name__)

# Rows due within the next tick are claimed now and probed at their own due time, so a
# 1 s beat adds no lateness of its own.
CLAIM_HORIZON_SECONDS = 1.0
# Long enough for the horizon, the longest allowed timeout and the bulk write; a killed
# worker's rows are probed again at most this long after their claim.
LEASE_SECONDS = CLAIM_HORIZON_SECONDS + MAX_TIMEOUT_SECONDS + 10
# Per tick, at most this many rows; 50,000 instances at 10 s need ~5,000 a tick, and a tick
# that ran late claims its backlog too (bench/RESULTS.md, health_throughput, issue 16).
MAX_CLAIM = 20_000
# Ids per batch task: one tick's worth at 50,000 instances / 10 s. A batch holds its child
# for the one-second horizon plus its write, so at 1,000 a tick of 5,000 made five tasks
# and the two prefork children fell behind; one batch a tick lets them take turns.
BATCH_SIZE = 5000


@dataclass
class Claim:
    ids: list[int]
    lease_until: datetime | None


@dataclass
class BatchReport:
    """What one batch did, for logs, tests and the benchmark."""

    probed: int = 0
    written: int = 0
    transitions: int = 0
    lateness: list[float] = field(default_factory=list)


_CLAIM_SQL = """
UPDATE health_instancecheck SET lease_until = %s
WHERE id IN (
  SELECT id FROM health_instancecheck
  WHERE next_due_at <= %s AND (lease_until IS NULL OR lease_until < %s)
  ORDER BY next_due_at
  LIMIT %s
  FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


def claim_due(
    limit: int = MAX_CLAIM, horizon: float = CLAIM_HORIZON_SECONDS, now: datetime | None = None
) -> Claim:
    """Lease up to `limit` checks due within `horizon` seconds; rows another claimer holds
    (locked or leased) are skipped, so any number of schedulers never double-run a row."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [lease_until, now + timedelta(seconds=horizon), now, limit])
        ids = sorted(row[0] for row in cursor.fetchall())
    return Claim(ids, lease_until if ids else None)


def claim(ids: list[int], now: datetime | None = None) -> Claim:
    """Lease exactly these checks (those not leased by someone else) and make them due now."""
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic():
        free = list(
            InstanceCheck.objects.select_for_update(skip_locked=True)
            .filter(id__in=ids)
            .exclude(lease_until__gte=now)
            .values_list("id", flat=True)
        )
        InstanceCheck.objects.filter(id__in=free).update(lease_until=lease_until, next_due_at=now)
    return Claim(sorted(free), lease_until if free else None)


def run_now(ids: list[int]) -> BatchReport:
    """Probe these checks right now, in this process (tests, the CLI, the benchmark)."""
    claimed = claim(ids)
    return run_batch(claimed.ids, claimed.lease_until)


@dataclass
class _Row:
    id: int
    state: CheckState
    status_since: datetime
    due: datetime
    lease: datetime | None
    instance_id: int
    host: str
    port: int
    service_id: int
    environment_id: int
    spec: ProbeSpec = DEFAULT_SPEC
    started: datetime | None = None
    result: ProbeResult | None = None


def run_batch(ids: list[int], lease: datetime | None = None) -> BatchReport:
    """Probe the checks among `ids` still held by this claim's `lease` (any live lease when
    None) and write the results; vanished rows, finished rows and rows another worker has
    claimed since (a redelivered message) are skipped."""
    now = timezone.now()
    rows = _load(ids, now, lease)
    report = BatchReport()
    if not rows:
        return report
    probe = runtime()
    probe.run(_probe_all(rows))
    report.probed = len(rows)
    report.lateness = [(r.started - r.due).total_seconds() for r in rows if r.started is not None]
    written, transitions = _write(rows)
    record_probes(
        (r.spec.kind, r.result.status, r.result.latency_ms, (r.started - r.due).total_seconds())
        for r in rows
        if r.result is not None and r.started is not None
    )
    report.written = written
    report.transitions = transitions
    return report


# One statement, the ids as one array parameter: the ORM's `id__in` spelled out 5,000
# placeholders and cost ~45 us a row (bench/RESULTS.md, health_throughput, issue 16).
_LOAD_SQL = """
SELECT c.id, c.status, c.consecutive_successes, c.consecutive_failures, c.status_since,
       c.next_due_at, c.lease_until, i.id, i.host, i.port, i.service_id, i.environment_id
FROM health_instancecheck AS c JOIN catalog_instance AS i ON i.id = c.instance_id
WHERE c.id = ANY(%s) AND {held}
"""


def _load(ids: list[int], now: datetime, lease: datetime | None = None) -> list[_Row]:
    held, value = (
        ("c.lease_until = %s", lease) if lease is not None else ("c.lease_until >= %s", now)
    )
    with connection.cursor() as cursor:
        cursor.execute(_LOAD_SQL.format(held=held), [list(ids), value])
        found = cursor.fetchall()
    rows = [
        _Row(
            id=i,
            state=CheckState(status, cs, cf),
            status_since=since,
            due=due,
            lease=lease,
            instance_id=inst,
            host=host,
            port=port,
            service_id=svc,
            environment_id=env,
        )
        for i, status, cs, cf, since, due, lease, inst, host, port, svc, env in found
    ]
    if not rows:
        return rows
    service_specs: dict[int, ProbeSpec] = {}
    instance_specs: dict[int, ProbeSpec] = {}
    specs = CheckSpec.objects.filter(
        service_id__in={r.service_id for r in rows}
    ) | CheckSpec.objects.filter(instance_id__in={r.instance_id for r in rows})
    for spec in specs:
        target = service_specs if spec.service_id else instance_specs
        target[spec.service_id or spec.instance_id] = ProbeSpec.from_model(spec)  # type: ignore[index]
    for r in rows:
        r.spec = (
            instance_specs.get(r.instance_id) or service_specs.get(r.service_id) or DEFAULT_SPEC
        )
    return rows


async def _probe_all(rows: list[_Row]) -> None:
    """Each row's probe starts at its own due time from a loop timer (no task, no sleep per
    row); returns when every row has its result."""
    probe = runtime()
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    left = len(rows)
    # Wall clock to loop clock, once per batch.
    offset = loop.time() - time.time()

    def start(row: _Row) -> None:
        row.started = datetime.now(UTC)
        port = row.spec.port or row.port

        def done(result: ProbeResult) -> None:
            nonlocal left
            row.result = result
            left -= 1
            if left == 0 and not finished.done():
                finished.set_result(None)

        try:
            probe.start(row.spec, row.host, port, done)
        except Exception as exc:  # a probe bug must not lose the batch; it shows as a failure
            logger.exception("probe of check %s (%s:%s) crashed", row.id, row.host, port)
            if row.result is None:
                done(ProbeResult.failed(f"probe error: {type(exc).__name__}", 0.0))

    for row in rows:
        loop.call_at(row.due.timestamp() + offset, start, row)
    if rows:
        await finished


def next_due(due: datetime, interval: int, now: datetime) -> datetime:
    """Keep each check's phase; if it fell behind, skip the missed slots instead of bunching."""
    following = due + timedelta(seconds=interval)
    if following <= now:
        missed = math.ceil((now - following).total_seconds() / interval)
        following += timedelta(seconds=interval * max(missed, 1))
    return following


def initial_due(spec: ProbeSpec, now: datetime) -> datetime:
    """Initial delay plus a random phase within one interval: no thundering herd."""
    return now + timedelta(
        seconds=spec.initial_delay_seconds + random.uniform(0, spec.interval_seconds)
    )


# One statement per batch: the values travel as 12 arrays (unnest), so the SQL text stays
# the same size whatever the batch size and the driver has no placeholders to expand.
_WRITE_SQL = """
UPDATE health_instancecheck AS c SET
  status = v.status, status_since = v.status_since, consecutive_successes = v.successes,
  consecutive_failures = v.failures, last_result = v.result, last_checked_at = v.checked,
  last_latency_ms = v.latency, last_reason = v.reason, last_output = v.output::jsonb,
  next_due_at = v.next_due, lease_until = NULL
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::integer[], %s::integer[],
            %s::text[], %s::timestamptz[], %s::double precision[], %s::text[], %s::text[],
            %s::timestamptz[], %s::timestamptz[])
     AS v(id, status, status_since, successes, failures, result, checked, latency, reason,
          output, next_due, lease)
WHERE c.id = v.id AND c.lease_until = v.lease
RETURNING c.id
"""


def _write(rows: list[_Row]) -> tuple[int, int]:
    """One transaction: results, transitions, service health, rollups; events on commit."""
    now = timezone.now()
    calendar = MaintenanceCalendar.for_services({r.service_id for r in rows})
    updates: list[tuple[_Row, CheckState, datetime]] = []
    buckets: dict[tuple[int, int, datetime], Bucket] = defaultdict(Bucket)
    for r in rows:
        assert r.result is not None and r.started is not None
        state = advance(
            r.state, r.result.status, r.spec.success_threshold, r.spec.failure_threshold
        )
        since = r.started if state.status != r.state.status else r.status_since
        updates.append((r, state, since))
        buckets[(r.service_id, r.environment_id, minute_of(r.started))].add(
            r.result.status, r.result.latency_ms
        )
    columns: list[list[Any]] = [[] for _ in range(12)]
    for r, state, since in updates:
        res = r.result
        assert res is not None
        values = (
            r.id, state.status, since, state.successes, state.failures, res.status, r.started,
            round(res.latency_ms, 3), res.reason, json.dumps(res.output),
            next_due(r.due, r.spec.interval_seconds, now), r.lease,
        )  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_WRITE_SQL, columns)
            written = {row[0] for row in cursor.fetchall()}
        if len(written) < len(updates):
            # Our lease ran out and another worker claimed those rows: theirs is the truth.
            logger.warning("batch lost the lease of %d checks", len(updates) - len(written))
        changed = [
            (r, state)
            for r, state, _ in updates
            if r.id in written and state.status != r.state.status
        ]
        transitions = _transitions(changed, calendar)
        upsert(buckets)
    return len(written), transitions


def is_first_success(transition: Transition) -> bool:
    """A new check's first good result: kept in the history, not published. A freshly
    registered fleet of thousands is not news, and publishing it would flood the timeline
    and the live view (its service still publishes unknown -> healthy)."""
    return transition.from_status == CheckStatus.UNKNOWN and transition.to_status in UP


def _transitions(changed: list[tuple[_Row, CheckState]], calendar: MaintenanceCalendar) -> int:
    if not changed:
        return 0
    records: list[Transition] = []
    reasons: dict[derive.Pair, str] = {}
    maintenance: dict[derive.Pair, bool] = {}
    pairs: set[derive.Pair] = set()
    for r, state in changed:
        assert r.result is not None and r.started is not None
        pair = (r.service_id, r.environment_id)
        in_maintenance = calendar.active(r.service_id, r.environment_id, r.started)
        maintenance[pair] = maintenance.get(pair, False) or in_maintenance
        if state.status in (CheckStatus.FAIL, CheckStatus.WARN):
            reasons[pair] = f"{r.host}:{r.spec.port or r.port} {r.result.reason}"
        pairs.add(pair)
        records.append(
            Transition(
                level=TransitionLevel.INSTANCE,
                instance_id=r.instance_id,
                service_id=r.service_id,
                environment_id=r.environment_id,
                from_status=r.state.status,
                to_status=state.status,
                reason=r.result.reason,
                in_maintenance=in_maintenance,
                at=r.started,
            )
        )
    Transition.objects.bulk_create(records)
    service_transitions = derive.refresh(pairs, reasons, maintenance)
    news = [t for t in records if not is_first_success(t)]
    instances = (
        Instance.objects.select_related("service", "service__team", "environment").in_bulk(
            {t.instance_id for t in news}
        )
        if news
        else {}
    )
    for record in news:
        instance = instances.get(record.instance_id)
        if instance is None:
            continue
        publish(
            HealthEvent.INSTANCE_CHANGED,
            subject=instance,
            message=f"{instance.address}: {record.from_status} -> {record.to_status}",
            payload={
                "from": record.from_status,
                "to": record.to_status,
                "reason": record.reason,
                "in_maintenance": record.in_maintenance,
            },
        )
    return len(records) + len(service_transitions)
