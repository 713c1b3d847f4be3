"""Heartbeat pings (one query on the common path) and the sweep that marks silent ones down."""

from __future__ import annotations

import ipaddress
import uuid as uuid_module
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from controlplane.events import publish
from health.choices import HeartbeatEvent, HeartbeatStatus, PingKind
from health.models import Heartbeat, HeartbeatPing
from health.models.heartbeats import LOG_TAIL_BYTES, PINGS_KEPT, USER_AGENT_CHARS

# A process exit status is one byte (0-255), as Healthchecks.io takes it.
MAX_EXIT_CODE = 255

_PING_FIELDS = [
    "status",
    "down_reason",
    "last_ping_at",
    "last_ping_kind",
    "started_at",
    "last_duration_seconds",
    "last_exit_code",
    "last_log",
    "ping_count",
    "deadline",
]


# The common ping (a heartbeat on a period schedule) in one statement: lock the row, apply
# the ping, add it to the heartbeat's history, drop the history row that fell out of the
# last PINGS_KEPT, and return the status before and after. Cron schedules need croniter for
# the next deadline, so they take the ORM path below. The ASGI fast path
# (health/ping_asgi.py) runs this same statement with the same parameters.
# The DELETE sees the table as it was before this statement (PostgreSQL's rule for
# data-modifying CTEs), so it never sees the row just inserted, whose n is the newest.
PING_SQL = """
WITH pinged AS (
  UPDATE health_heartbeat AS h SET
    status = CASE
      WHEN %(kind)s = 'start' THEN (CASE WHEN h.status = 'paused' THEN 'new' ELSE h.status END)
      WHEN %(kind)s = 'fail' THEN 'down' ELSE 'up' END,
    down_reason = CASE
      WHEN %(kind)s = 'start' THEN h.down_reason
      WHEN %(kind)s = 'fail' THEN %(fail_reason)s ELSE '' END,
    deadline = CASE
      WHEN %(kind)s = 'start' THEN %(now)s + make_interval(secs => h.grace_seconds)
      WHEN %(kind)s = 'fail' THEN NULL
      ELSE %(now)s + make_interval(secs => h.period_seconds + h.grace_seconds) END,
    last_duration_seconds = CASE
      WHEN %(kind)s = 'start' OR h.started_at IS NULL THEN h.last_duration_seconds
      ELSE EXTRACT(EPOCH FROM (%(now)s - h.started_at)) END,
    started_at = CASE WHEN %(kind)s = 'start' THEN %(now)s ELSE NULL END,
    last_ping_at = %(now)s, last_ping_kind = %(kind)s, last_exit_code = %(exit_code)s,
    last_log = %(log)s, ping_count = h.ping_count + 1
  FROM (SELECT id, status, started_at FROM health_heartbeat
        WHERE uuid = %(uuid)s AND schedule_kind = 'period' FOR UPDATE) AS before
  WHERE h.id = before.id
  RETURNING h.id, before.status AS previous, h.status, h.ping_count,
    CASE WHEN %(kind)s <> 'start' AND before.started_at IS NOT NULL
      THEN EXTRACT(EPOCH FROM (%(now)s - before.started_at)) END AS duration
), recorded AS (
  INSERT INTO health_heartbeatping
    (heartbeat_id, n, at, kind, exit_code, duration_seconds, body, remote_addr, user_agent)
  SELECT id, ping_count, %(now)s, %(kind)s, %(exit_code)s::integer, duration, %(log)s,
    %(remote_addr)s::inet, %(user_agent)s
  FROM pinged
), pruned AS (
  DELETE FROM health_heartbeatping AS p USING pinged
  WHERE p.heartbeat_id = pinged.id AND p.n <= pinged.ping_count - %(kept)s
)
SELECT id, previous, status FROM pinged
"""


# A /log ping: counted and kept in the history with its body, nothing else about the
# heartbeat changes (status, deadline, last ping), on any schedule.
LOG_SQL = """
WITH counted AS (
  UPDATE health_heartbeat SET ping_count = ping_count + 1
  WHERE uuid = %(uuid)s
  RETURNING id, status, ping_count
), recorded AS (
  INSERT INTO health_heartbeatping
    (heartbeat_id, n, at, kind, exit_code, duration_seconds, body, remote_addr, user_agent)
  SELECT id, ping_count, %(now)s, %(kind)s, NULL, NULL, %(log)s,
    %(remote_addr)s::inet, %(user_agent)s
  FROM counted
), pruned AS (
  DELETE FROM health_heartbeatping AS p USING counted
  WHERE p.heartbeat_id = counted.id AND p.n <= counted.ping_count - %(kept)s
)
SELECT id, status AS previous, status FROM counted
"""


def statement_for(kind: str) -> str:
    """The one statement that records a ping of this kind (the fast path runs it too)."""
    return LOG_SQL if kind == PingKind.LOG else PING_SQL


def ping(
    key: uuid_module.UUID,
    kind: str,
    exit_code: int | None = None,
    body: bytes = b"",
    *,
    remote_addr: str | None = None,
    user_agent: str = "",
) -> str | None:
    """Record a ping (and its history row) and return the heartbeat's status, or None when
    no heartbeat has this uuid. One query for period schedules and log pings, two for cron
    (plus the history's insert and cap); state changes are published."""
    now = timezone.now()
    arguments = ping_arguments(key, kind, exit_code, body, now, remote_addr, user_agent)
    with connection.cursor() as cursor:
        cursor.execute(statement_for(arguments["kind"]), arguments)
        row = cursor.fetchone()
    if row is None:
        if arguments["kind"] == PingKind.LOG:
            return None  # LOG_SQL serves every schedule: no row is no heartbeat
        return _ping_with_orm(key, arguments, now)
    heartbeat_id, previous, status = row
    if status != previous:
        announce_change(heartbeat_id, previous)
    return str(status)


def ping_arguments(
    key: uuid_module.UUID,
    kind: str,
    exit_code: int | None,
    body: bytes,
    now: datetime,
    remote_addr: str | None = None,
    user_agent: str = "",
) -> dict[str, Any]:
    """The parameters of PING_SQL for one ping: an exit code decides the kind, the body is
    cut to its log tail, and the caller's address and user agent are what the history keeps."""
    if exit_code is not None:
        kind = PingKind.SUCCESS if exit_code == 0 else PingKind.FAIL
    # The tail is what tells why a job failed; the head is mostly start-up noise.
    # PostgreSQL text cannot hold NUL: a binary log shows the replacement character there.
    log = body[-LOG_TAIL_BYTES:].decode(errors="replace").replace("\x00", "\ufffd")
    return {
        "kind": str(kind), "now": now, "exit_code": exit_code, "log": log, "uuid": key,
        "fail_reason": _fail_reason(exit_code), "remote_addr": _address(remote_addr),
        "user_agent": user_agent[:USER_AGENT_CHARS].replace("\x00", "\ufffd"),
        "kept": PINGS_KEPT,
    }  # fmt: skip


def _address(remote_addr: str | None) -> str | None:
    """The client's IP address, or None when the server gave none (a unix socket)."""
    try:
        return str(ipaddress.ip_address(remote_addr or ""))
    except ValueError:
        return None


def announce_change(heartbeat_id: int, previous: str) -> None:
    """Publish what a committed ping changed (failed, recovered); quiet changes publish nothing."""
    with transaction.atomic():
        heartbeat = (
            Heartbeat.objects.select_related("service", "service__team", "environment")
            .filter(pk=heartbeat_id)
            .first()
        )
        if heartbeat is None:
            return  # deleted since the ping: nobody is left to tell
        _announce(heartbeat, previous)


def _fail_reason(exit_code: int | None) -> str:
    return f"failed with exit code {exit_code}" if exit_code is not None else "reported failure"


def _ping_with_orm(key: uuid_module.UUID, arguments: dict[str, Any], now: datetime) -> str | None:
    kind, exit_code = arguments["kind"], arguments["exit_code"]
    with transaction.atomic():
        # Locks the row against the late sweep: a ping and a sweep never both decide.
        heartbeat = (
            Heartbeat.objects.select_for_update(of=("self",))
            .select_related("service", "service__team", "environment")
            .filter(uuid=key)
            .first()
        )
        if heartbeat is None:
            return None
        previous, started_at = heartbeat.status, heartbeat.started_at
        _apply(heartbeat, kind, exit_code, now)
        heartbeat.last_ping_at = now
        heartbeat.last_ping_kind = kind
        heartbeat.last_exit_code = exit_code
        heartbeat.last_log = arguments["log"]
        heartbeat.ping_count += 1
        heartbeat.save(update_fields=_PING_FIELDS)
        HeartbeatPing.objects.create(
            heartbeat=heartbeat,
            n=heartbeat.ping_count,
            at=now,
            kind=kind,
            exit_code=exit_code,
            duration_seconds=(
                (now - started_at).total_seconds()
                if kind != PingKind.START and started_at is not None
                else None
            ),
            body=arguments["log"],
            remote_addr=arguments["remote_addr"],
            user_agent=arguments["user_agent"],
        )
        HeartbeatPing.objects.filter(
            heartbeat=heartbeat, n__lte=heartbeat.ping_count - PINGS_KEPT
        ).delete()
        if heartbeat.status != previous:
            _announce(heartbeat, previous)
    return str(heartbeat.status)


def _apply(heartbeat: Heartbeat, kind: str, exit_code: int | None, now: datetime) -> None:
    if kind == PingKind.START:
        heartbeat.started_at = now
        # Started jobs must finish within the grace time, as in Healthchecks.io.
        heartbeat.deadline = now + timedelta(seconds=heartbeat.grace_seconds)
        if heartbeat.status == HeartbeatStatus.PAUSED:
            heartbeat.status = HeartbeatStatus.NEW
        return
    if heartbeat.started_at is not None:
        heartbeat.last_duration_seconds = (now - heartbeat.started_at).total_seconds()
        heartbeat.started_at = None
    if kind == PingKind.FAIL:
        heartbeat.status = HeartbeatStatus.DOWN
        heartbeat.down_reason = _fail_reason(exit_code)
        heartbeat.deadline = None
        return
    heartbeat.status = HeartbeatStatus.UP
    heartbeat.down_reason = ""
    heartbeat.deadline = heartbeat.deadline_after(now)


def _announce(heartbeat: Heartbeat, previous: str) -> None:
    if heartbeat.status == HeartbeatStatus.DOWN:
        action = HeartbeatEvent.FAILED
    elif heartbeat.status == HeartbeatStatus.UP and previous == HeartbeatStatus.DOWN:
        action = HeartbeatEvent.RECOVERED
    else:
        return  # new -> up and paused -> new are not news
    publish(
        action,
        subject=heartbeat,
        service=heartbeat.service,
        environment=heartbeat.environment,
        message=heartbeat.down_reason or "pinging again",
        payload={"from": previous, "to": heartbeat.status, "reason": heartbeat.down_reason},
    )


def pause(heartbeat: Heartbeat, *, actor: Any) -> bool:
    """Pause a heartbeat (its silence no longer counts, as in Healthchecks.io) until it is
    resumed or its next ping; False when it already was. One audited event."""
    with transaction.atomic():
        locked = Heartbeat.objects.select_for_update().get(pk=heartbeat.pk)
        if locked.status == HeartbeatStatus.PAUSED:
            return False
        previous = locked.status
        locked.status, locked.down_reason, locked.deadline = HeartbeatStatus.PAUSED, "", None
        locked.save(update_fields=["status", "down_reason", "deadline"])
        publish(
            HeartbeatEvent.PAUSED,
            actor=actor,
            subject=heartbeat,
            service=heartbeat.service,
            environment=heartbeat.environment,
            message=f"heartbeat {heartbeat} paused",
            payload={"from": previous, "to": HeartbeatStatus.PAUSED},
        )
    heartbeat.status, heartbeat.down_reason, heartbeat.deadline = locked.status, "", None
    return True


def resume(heartbeat: Heartbeat, *, actor: Any) -> bool:
    """Resume a paused heartbeat: new again, due a period (or its next cron time) plus grace
    from now. False when it was not paused."""
    now = timezone.now()
    with transaction.atomic():
        locked = Heartbeat.objects.select_for_update().get(pk=heartbeat.pk)
        if locked.status != HeartbeatStatus.PAUSED:
            return False
        locked.status, locked.deadline = HeartbeatStatus.NEW, locked.deadline_after(now)
        locked.save(update_fields=["status", "deadline"])
        publish(
            HeartbeatEvent.RESUMED,
            actor=actor,
            subject=heartbeat,
            service=heartbeat.service,
            environment=heartbeat.environment,
            message=f"heartbeat {heartbeat} resumed",
            payload={"from": HeartbeatStatus.PAUSED, "to": HeartbeatStatus.NEW},
        )
    heartbeat.status, heartbeat.deadline = locked.status, locked.deadline
    return True


def mark_late(now: datetime | None = None, limit: int = 1000) -> int:
    """Heartbeats past their deadline go down (heartbeat.late); returns how many."""
    now = now or timezone.now()
    marked = 0
    with transaction.atomic():
        late = (
            Heartbeat.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("service", "service__team", "environment")
            .filter(deadline__lt=now)
            .exclude(status__in=[HeartbeatStatus.DOWN, HeartbeatStatus.PAUSED])[:limit]
        )
        for heartbeat in late:
            previous = heartbeat.status
            heartbeat.status = HeartbeatStatus.DOWN
            if heartbeat.started_at is not None:
                heartbeat.down_reason = (
                    f"started {heartbeat.started_at:%Y-%m-%d %H:%M:%S} UTC, "
                    f"not finished within {heartbeat.grace_seconds} s grace"
                )
            else:
                last = (
                    f"{heartbeat.last_ping_at:%Y-%m-%d %H:%M:%S} UTC"
                    if heartbeat.last_ping_at
                    else "never"
                )
                heartbeat.down_reason = (
                    f"late: last ping {last}, due by {heartbeat.deadline:%Y-%m-%d %H:%M:%S} UTC"
                )
            heartbeat.deadline = None
            heartbeat.save(update_fields=["status", "down_reason", "deadline"])
            publish(
                HeartbeatEvent.LATE,
                subject=heartbeat,
                service=heartbeat.service,
                environment=heartbeat.environment,
                message=heartbeat.down_reason,
                payload={"from": previous, "to": heartbeat.status, "reason": heartbeat.down_reason},
            )
            marked += 1
    return marked


def prune_pings(now: datetime | None = None, batch: int = 10_000) -> int:
    """Delete ping history older than SIGNALBOX_HEARTBEAT_PING_RETENTION_DAYS (the count cap
    is kept by each ping itself); returns how many rows went."""
    cutoff = (now or timezone.now()) - timedelta(
        days=settings.SIGNALBOX_HEARTBEAT_PING_RETENTION_DAYS
    )
    deleted = 0
    while True:
        # In batches: one short transaction each, so pings never wait long on the sweep.
        ids = list(HeartbeatPing.objects.filter(at__lt=cutoff).values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += HeartbeatPing.objects.filter(id__in=ids).delete()[0]
