"""Rollout notices: the events subscriptions ask for, queued in the outbox with the event.

Handed over by the spine like every event (alerts.tasks.evaluate, once per event), so a
notice is written in the same transaction that marks the event evaluated: never lost (the
catch-up sweep evaluates a missed hand-off), never twice (one row per channel and event,
a unique index).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from alerts.choices import ROLLOUT_NOTICES, NotificationAction, RolloutNotice
from alerts.models import Notification, Subscription
from alerts.outbox import dispatch_on_commit
from controlplane.models import Event
from deployments.models import Rollout

ACTIONS = frozenset(ROLLOUT_NOTICES)


def on_event(event: Event) -> list[Notification]:
    """Queue one notice per channel whose enabled subscription asks for this event."""
    notice = ROLLOUT_NOTICES.get(event.action)
    if notice is None or event.team_id is None:
        return []
    if event.payload.get("phase") == "completed":
        return []  # a rollback is told when it starts (with why); its end is the same news
    subscriptions = (
        Subscription.objects.filter(team_id=event.team_id, enabled=True, channel__enabled=True)
        .select_related("channel")
        .order_by("id")
    )
    wanting = [s for s in subscriptions if s.wants(notice, event.service_id, event.environment)]
    if not wanting:
        return []
    details = describe(event, RolloutNotice(notice))
    queued: list[Notification] = []
    told: set[int] = set()
    for subscription in wanting:
        if subscription.channel_id in told:
            continue
        told.add(subscription.channel_id)
        notification, created = Notification.objects.get_or_create(
            channel=subscription.channel,
            event_id=event.pk,
            defaults={
                "action": NotificationAction.ROLLOUT,
                "group_key": f"rollout:{event.pk}",
                "details": details,
                "next_attempt_at": timezone.now(),
            },
        )
        if created:
            dispatch_on_commit(notification.pk)
            queued.append(notification)
    return queued


def describe(event: Event, notice: RolloutNotice) -> dict[str, Any]:
    """What every channel kind says about the event, kept on the outbox row."""
    rollout_id = event.payload.get("rollout")
    rollout = Rollout.objects.filter(pk=rollout_id).first() if isinstance(rollout_id, int) else None
    service = event.service.slug if event.service else event.subject_label
    environment = event.environment.slug if event.environment else None
    version = rollout.to_version if rollout else ""
    where = f" in {environment}" if environment else ""
    url = settings.SIGNALBOX_BASE_URL.rstrip("/") + rollout.get_absolute_url() if rollout else None
    return {
        "event": event.pk,
        "notice": notice.value,
        "title": f"{service} {version}{where}: rollout {notice.label.lower()}".replace("  ", " "),
        "message": event.message,
        "team": event.team.slug if event.team else None,
        "service": event.service.slug if event.service else None,
        "environment": environment,
        "rollout": rollout.pk if rollout else rollout_id,
        "from_version": rollout.from_version if rollout else None,
        "to_version": version or None,
        "strategy": rollout.strategy if rollout else None,
        "state": event.payload.get("state") or (rollout.state if rollout else None),
        "actor": event.actor_label,
        "at": event.created_at.isoformat(),
        "url": url,
    }
