"""The notification outbox: rows written with the incident, claimed by workers under a lease.

A row is claimed by one atomic UPDATE (or SELECT ... FOR UPDATE SKIP LOCKED for a batch)
that sets a lease; only the lease holder may record the outcome. A worker that dies leaves
a lease that runs out, and the next sweep claims the row again. Celery messages only make
delivery prompt: the rows are the truth, so a lost message (Redis restarted) delays a
notification by one sweep, never loses it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.choices import (
    FINISHED_DELIVERY_STATES,
    ChannelKind,
    DeliveryState,
    NotificationAction,
    NotificationEvent,
    TimelineKind,
)
from alerts.models import Channel, DeliveryAttempt, Incident, Notification, Route, TimelineEntry
from alerts.notifiers import Result, apprise_urls, rollouts, send

logger = logging.getLogger(__name__)

DELIVER_TASK = "alerts.tasks.deliver"
# Channels that show an acknowledgement; an email for each ack would be noise.
ACK_KINDS = (
    ChannelKind.PAGERDUTY, ChannelKind.OPSGENIE, ChannelKind.SLACK, ChannelKind.WEBHOOK,
    ChannelKind.APPRISE,
)  # fmt: skip
# Pagers dedupe by the incident's own key: each incident is its own alert there, and a
# dependency's heads-up never goes to them (the root's team is the one paged).
PAGER_KINDS = (ChannelKind.PAGERDUTY, ChannelKind.OPSGENIE)


def queue_trigger(incident: Incident, route: Route) -> Notification:
    """Add the incident to its group's pending trigger for this channel, or start one."""
    channel = route.channel
    now = timezone.now()
    notification = None
    group_key = ""
    if channel.kind not in PAGER_KINDS:
        # PagerDuty and Opsgenie group alerts by their key, so each incident is its own.
        group_key = (
            f"{channel.pk}:{incident.team_id}:{incident.service_id or '-'}"
            f":{incident.environment_id or '-'}"
        )
        notification = (
            Notification.objects.select_for_update()
            .filter(
                group_key=group_key,
                action=NotificationAction.TRIGGER,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at__gt=now,
            )
            .order_by("id")
            .first()
        )
    if notification is None:
        notification = Notification.objects.create(
            channel=channel,
            action=NotificationAction.TRIGGER,
            group_key=group_key,
            next_attempt_at=now + timedelta(seconds=route.group_wait_seconds),
        )
    notification.incidents.add(incident)
    if notification.next_attempt_at <= now:
        dispatch_on_commit(notification.pk)
    return notification


def queue_root_update(root: Incident, route: Route) -> Notification | None:
    """The root's trigger once more for this channel, now listing its dependents; nothing if
    one is still waiting to go out (it will list them when sent)."""
    waiting = Notification.objects.filter(
        incidents=root,
        channel=route.channel,
        action=NotificationAction.TRIGGER,
        state=DeliveryState.PENDING,
        attempts=0,
    ).exists()
    if waiting:
        return None
    return queue_trigger(root, route)


def queue_affected(incident: Incident, root: Incident) -> list[Notification]:
    """ "Your service is affected by <root>": one heads-up per root and channel of the
    incident's team, joined by the team's other incidents under the same root while it waits
    out the group wait. Never to PagerDuty: the root's team is the one paged."""
    routes = (
        Route.objects.filter(
            team_id=incident.team_id,
            severity=incident.severity,
            escalation_level=0,
            enabled=True,
            channel__enabled=True,
        )
        .exclude(channel__kind__in=PAGER_KINDS)
        .select_related("channel")
    )
    now = timezone.now()
    queued = []
    for route in routes:
        group_key = f"affected:{route.channel_id}:{root.pk}"
        notification = (
            Notification.objects.select_for_update()
            .filter(group_key=group_key, action=NotificationAction.AFFECTED)
            .exclude(state=DeliveryState.CANCELLED)
            .order_by("id")
            .first()
        )
        if notification is not None and (
            notification.state != DeliveryState.PENDING or notification.attempts > 0
        ):
            continue  # the team heard of this root already: one heads-up per root
        if notification is None:
            notification = Notification.objects.create(
                channel=route.channel,
                action=NotificationAction.AFFECTED,
                group_key=group_key,
                next_attempt_at=now + timedelta(seconds=route.group_wait_seconds),
            )
        notification.incidents.add(incident)
        if notification.next_attempt_at <= now:
            dispatch_on_commit(notification.pk)
        queued.append(notification)
    return queued


def queue_follow_up(incident: Incident, action: str) -> list[Notification]:
    """An acknowledge or resolve for each channel that heard (or is hearing) the trigger."""
    triggers = list(
        Notification.objects.select_for_update(of=("self",))
        .filter(incidents=incident, action=NotificationAction.TRIGGER)
        .exclude(state=DeliveryState.CANCELLED)
        .select_related("channel")
        .order_by("id")
    )
    by_channel: dict[int, list[Notification]] = {}
    for trigger in triggers:
        by_channel.setdefault(trigger.channel_id, []).append(trigger)
    queued = []
    for rows in by_channel.values():
        channel = rows[0].channel
        unsent = [r for r in rows if r.state == DeliveryState.PENDING and r.attempts == 0]
        heard = [r for r in rows if r not in unsent and r.state != DeliveryState.FAILED]
        if action == NotificationAction.RESOLVE:
            # Resolved inside the group wait: take it out of the message instead of sending
            # a trigger and a resolve back to back.
            withdraw(incident, unsent)
        if not heard or not hears(channel, action):
            continue
        follow_up = Notification.objects.create(
            channel=channel, action=action, depends_on=heard[-1], next_attempt_at=timezone.now()
        )
        follow_up.incidents.add(incident)
        dispatch_on_commit(follow_up.pk)
        queued.append(follow_up)
    if action == NotificationAction.RESOLVE:
        # A heads-up still waiting need not say a resolved incident is affected.
        withdraw(
            incident,
            Notification.objects.select_for_update()
            .filter(
                incidents=incident,
                action=NotificationAction.AFFECTED,
                state=DeliveryState.PENDING,
                attempts=0,
            )
            .order_by("id"),
        )
    return queued


def hears(channel: Channel, action: str) -> bool:
    """Whether a channel that heard the trigger hears this acknowledge or resolve."""
    if channel.kind == ChannelKind.APPRISE and not apprise_urls.follows_up(channel, action):
        return False
    return action != NotificationAction.ACKNOWLEDGE or channel.kind in ACK_KINDS


def withdraw(incident: Incident, rows: Iterable[Notification]) -> None:
    for row in rows:
        row.incidents.remove(incident)
        if not row.incidents.exists():
            row.state = DeliveryState.CANCELLED
            row.save(update_fields=["state"])


def dispatch_on_commit(notification_id: int) -> None:
    """Hand the row to a worker right after commit, so delivery does not wait for the sweep."""
    if settings.ALERTS_DISPATCH:
        transaction.on_commit(lambda: dispatch(notification_id))


def dispatch(notification_id: int) -> None:
    from controlplane.celery import app

    try:
        app.send_task(DELIVER_TASK, args=[notification_id], expires=300)
    except Exception:
        # The row is due in the database; the next sweep delivers it.
        logger.warning("could not enqueue notification %s; the sweep will", notification_id)


def _due(now: datetime) -> Q:
    return Q(next_attempt_at__lte=now) & (
        Q(state=DeliveryState.PENDING) | Q(state=DeliveryState.DELIVERING, lease_until__lt=now)
    )


def _lease(now: datetime, worker: str) -> dict[str, object]:
    return {
        "state": DeliveryState.DELIVERING,
        "lease_until": now + timedelta(seconds=settings.ALERTS_LEASE_SECONDS),
        "leased_by": worker,
    }


def due_ids(limit: int = 200) -> list[int]:
    """Rows a worker could claim now (for the sweep to hand out)."""
    now = timezone.now()
    return list(
        Notification.objects.filter(_due(now))
        .filter(Q(depends_on__isnull=True) | Q(depends_on__state__in=FINISHED_DELIVERY_STATES))
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )


def claim(notification_id: int, worker: str) -> bool:
    """Take one row if it is due and unclaimed; False means someone else has it (or not due)."""
    now = timezone.now()
    depends = (
        Notification.objects.filter(pk=notification_id)
        .values_list("depends_on__state", flat=True)
        .first()
    )
    if depends is not None and depends not in FINISHED_DELIVERY_STATES:
        return False  # its trigger is not out yet; a later sweep tries again
    # The WHERE is re-checked on the locked row, so of two racing workers one updates 1 row
    # and the other 0: only the first sends.
    from django.db.models import F

    updated = Notification.objects.filter(_due(now), pk=notification_id).update(
        attempts=F("attempts") + 1, **_lease(now, worker)
    )
    return updated == 1


def claim_due(worker: str, limit: int) -> list[int]:
    """Claim up to `limit` due rows at once; concurrent claimers skip each other's rows."""
    from django.db.models import F

    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(_due(now))
            .filter(Q(depends_on__isnull=True) | Q(depends_on__state__in=FINISHED_DELIVERY_STATES))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        Notification.objects.filter(id__in=ids).update(
            attempts=F("attempts") + 1, **_lease(now, worker)
        )
    return ids


def deliver(notification_id: int, worker: str) -> bool:
    """Claim and send one row; True if this worker sent it."""
    if not claim(notification_id, worker):
        return False
    send_claimed(notification_id, worker)
    return True


def deliver_due(worker: str, limit: int = 50) -> int:
    """One pass of a delivery loop: claim due rows and send them; returns how many."""
    ids = claim_due(worker, limit)
    for notification_id in ids:
        send_claimed(notification_id, worker)
    return len(ids)


def send_claimed(notification_id: int, worker: str) -> None:
    notification = (
        Notification.objects.select_related("channel", "channel__team")
        .filter(pk=notification_id, state=DeliveryState.DELIVERING, leased_by=worker)
        .first()
    )
    if notification is None:
        return
    incidents = list(
        notification.incidents.select_related("rule", "team", "service", "environment").order_by(
            "id"
        )
    )
    rollout = notification.action == NotificationAction.ROLLOUT
    if notification.action != NotificationAction.TEST and not rollout and not incidents:
        Notification.objects.filter(pk=notification.pk, leased_by=worker).update(
            state=DeliveryState.CANCELLED
        )
        return
    started = time.monotonic()
    try:
        if rollout:
            result = rollouts.send(notification.channel, notification.details, notification.pk)
        else:
            result = send(notification.channel, notification.action, incidents, notification.pk)
    except Exception as exc:  # a bug in a notifier must not wedge the row forever
        logger.exception("notifier crashed on notification %s", notification.pk)
        result = Result(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")
    record(notification, incidents, result, worker, int((time.monotonic() - started) * 1000))


def record(
    notification: Notification,
    incidents: list[Incident],
    result: Result,
    worker: str,
    duration_ms: int,
) -> None:
    """Write the attempt to the delivery log and move the row on: done, retry later, or failed."""
    now = timezone.now()
    DeliveryAttempt.objects.create(
        notification=notification,
        worker=worker[:100],
        status_code=result.status_code,
        ok=result.ok,
        error=result.error[:500],
        duration_ms=duration_ms,
    )
    mine = Notification.objects.filter(
        pk=notification.pk, state=DeliveryState.DELIVERING, leased_by=worker
    )
    outcome = {"last_status_code": result.status_code, "last_error": result.error[:500]}
    channel = notification.channel
    if result.ok:
        updated = mine.update(
            state=DeliveryState.DELIVERED, delivered_at=now, lease_until=None, **outcome
        )
        _note_all(
            incidents,
            TimelineKind.DELIVERED,
            f"{notification.action} to {channel.name} ({result.status_code or 'sent'})",
        )
    elif result.retryable and notification.attempts < settings.ALERTS_MAX_ATTEMPTS:
        delay = backoff(notification.attempts, result.retry_after)
        updated = mine.update(
            state=DeliveryState.PENDING,
            next_attempt_at=now + timedelta(seconds=delay),
            lease_until=None,
            **outcome,
        )
    else:
        updated = mine.update(state=DeliveryState.FAILED, lease_until=None, **outcome)
        _failed(notification, incidents, result)
    if updated != 1:
        # The lease ran out and another worker took the row over: its result stands.
        logger.warning("notification %s: lease lost by %s", notification.pk, worker)


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before try number attempts+1: exponential, capped, with jitter in its upper half
    (so retries of many rows spread out but each one still waits longer than the last)."""
    base: float = settings.ALERTS_RETRY_BASE_MS / 1000
    delay = min(float(settings.ALERTS_RETRY_MAX_SECONDS), base * 2 ** max(attempts - 1, 0))
    delay = delay / 2 + random.uniform(0, delay / 2)
    return float(max(delay, retry_after or 0.0))


def _note_all(incidents: list[Incident], kind: str, message: str) -> None:
    TimelineEntry.objects.bulk_create(
        [TimelineEntry(incident=i, kind=kind, message=message[:500]) for i in incidents]
    )


def _failed(notification: Notification, incidents: list[Incident], result: Result) -> None:
    from controlplane.events import publish

    channel: Channel = notification.channel
    reason = result.error or f"HTTP {result.status_code}"
    message = (
        f"{notification.action} to {channel.name} failed after "
        f"{notification.attempts} attempt(s): {reason}"
    )
    _note_all(incidents, TimelineKind.DELIVERY_FAILED, message)
    logger.error("notification %s failed: %s", notification.pk, message)
    publish(
        NotificationEvent.FAILED,
        actor="alerts",
        subject=channel,
        team=channel.team,
        message=message,
        payload={
            "notification": notification.pk,
            "channel": channel.pk,
            "status_code": result.status_code,
            "incidents": [i.pk for i in incidents],
        },
    )
