"""An incident's life: pending, firing, acknowledged, resolved; each step noted and published."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alerts import dependencies, outbox
from alerts.choices import (
    IncidentEvent,
    IncidentState,
    NotificationAction,
    RuleKind,
    Severity,
    TimelineKind,
)
from alerts.models import Incident, Route, Rule, TimelineEntry
from alerts.rules.base import Subject
from alerts.silences import suppression_for
from controlplane.events import publish

logger = logging.getLogger(__name__)

SYSTEM = "alerts"
# The kinds whose incidents say a dependency is down (alerts.dependencies).
ROOT_KINDS = (RuleKind.SERVICE_STATE, RuleKind.EXTERNAL_STATUS)


def dedup_key(rule: Rule, subject: Subject) -> str:
    return f"{rule.pk}/{subject.type}:{subject.id}/{subject.environment_id or '-'}"


def actor_label(actor: Any) -> str:
    """How the timeline names whoever acted: a user, an API token's Access, or a system."""
    if actor is None:
        return SYSTEM
    if isinstance(actor, str):
        return actor
    if hasattr(actor, "label"):
        return str(actor.label())
    return str(actor.get_username())


def note(incident: Incident, kind: str, message: str = "", actor: str = SYSTEM) -> None:
    TimelineEntry.objects.create(incident=incident, kind=kind, message=message[:500], actor=actor)


def _lock(key: str) -> None:
    # Serialises everyone deciding about one rule and subject (events can race across
    # workers); the partial unique index is the backstop.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])


def raise_condition(
    rule: Rule,
    subject: Subject,
    *,
    title: str,
    reason: str,
    since: datetime | None = None,
    hold_seconds: int = 0,
    in_maintenance: bool = False,
) -> Incident:
    """The condition holds for `subject`: open (or keep) its incident; fire it once held long
    enough."""
    now = timezone.now()
    since = since or now
    key = dedup_key(rule, subject)
    with transaction.atomic():
        _lock(key)
        incident = Incident.objects.open().filter(dedup_key=key).select_related("rule").first()
        if incident is None:
            incident = Incident.objects.create(
                rule=rule,
                team_id=rule.team_id,
                service_id=subject.service_id,
                environment_id=subject.environment_id,
                subject_type=subject.type,
                subject_id=subject.id,
                subject_label=subject.label[:300],
                dedup_key=key,
                severity=rule.severity,
                title=title[:200],
                reason=reason,
                started_at=since,
                fire_at=since + timedelta(seconds=hold_seconds),
                in_maintenance=in_maintenance,
            )
            if incident.fire_at > now:
                note(
                    incident,
                    TimelineKind.PENDING,
                    f"{reason}; fires if it still holds "
                    f"at {incident.fire_at:%Y-%m-%d %H:%M:%S} UTC",
                )
        elif (incident.reason, incident.in_maintenance) != (reason, in_maintenance):
            incident.reason = reason
            incident.in_maintenance = in_maintenance
            incident.save(update_fields=["reason", "in_maintenance"])
            if incident.state != IncidentState.PENDING:
                note(incident, TimelineKind.UPDATED, reason)
        if incident.state == IncidentState.PENDING and incident.fire_at <= now:
            fire(incident, now)
    return incident


def clear_condition(rule: Rule, subject: Subject, reason: str) -> Incident | None:
    """The condition no longer holds: drop a pending incident, resolve a notified one."""
    key = dedup_key(rule, subject)
    with transaction.atomic():
        _lock(key)
        incident = Incident.objects.open().filter(dedup_key=key).first()
        if incident is None:
            return None
        if incident.state == IncidentState.PENDING:
            # It never fired and nobody heard of it: not an incident, just a blip.
            incident.delete()
            return None
        resolve(incident, None, reason)
        return incident


def fire(incident: Incident, now: datetime | None = None) -> None:
    now = now or timezone.now()
    incident.state = IncidentState.FIRING
    incident.fired_at = now
    if incident.severity == Severity.PAGE:
        incident.next_repeat_at = now + timedelta(seconds=settings.ALERTS_REPEAT_SECONDS)
        incident.escalate_at = now + timedelta(seconds=settings.ALERTS_ESCALATE_AFTER_SECONDS)
    incident.save()
    note(incident, TimelineKind.FIRED, incident.reason)
    # Queued before the event is published, so on commit the delivery task is handed out
    # before the live dashboard is rendered and pushed: the page can wait, the pager not.
    notify(incident, level=0)
    if incident.rule.kind in ROOT_KINDS:
        # Dependents that fired a moment before their cause wait under it after all.
        dependencies.adopt(incident)
    _publish(IncidentEvent.FIRING, incident, SYSTEM)


def notify(incident: Incident, level: int, kind: str = TimelineKind.NOTIFIED) -> bool:
    """Queue the trigger for the routes of `level`, unless silenced or held under the root
    incident of a dependency that is down; True if queued."""
    from alerts.rules import kind_of

    if level == 0 and incident.notified_at is None and kind_of(incident.rule).follows_root:
        dependencies.group(incident)
    suppression = suppression_for(incident)
    if suppression:
        if incident.suppressed_by != suppression:
            incident.suppressed_by = suppression
            incident.save(update_fields=["suppressed_by"])
            note(incident, TimelineKind.SUPPRESSED, f"not sent: {suppression}")
        return False
    routes = routes_for(incident, level)
    if not routes:
        if level == 0:
            note(
                incident,
                TimelineKind.UNROUTED,
                f"team {incident.team.slug} has no route "
                f"for {incident.severity}; add one in the team's alert settings",
            )
        return False
    for route in routes:
        outbox.queue_trigger(incident, route)
    incident.suppressed_by = ""
    incident.notified_at = incident.notified_at or timezone.now()
    incident.save(update_fields=["suppressed_by", "notified_at"])
    names = ", ".join(sorted({r.channel.name for r in routes}))
    note(incident, kind, f"level {level}: {names}")
    return True


def routes_for(incident: Incident, level: int) -> list[Route]:
    routes = list(
        Route.objects.filter(
            team_id=incident.team_id,
            severity=incident.severity,
            escalation_level=level,
            enabled=True,
            channel__enabled=True,
        ).select_related("channel")
    )
    if routes or level != 0 or not incident.rule.is_protected:
        return routes
    # A rollback always notifies the owning team: with no route for its severity, every
    # channel the team has hears of it.
    from alerts.models import Channel

    return [
        Route(team_id=incident.team_id, severity=incident.severity, channel=c, group_wait_seconds=0)
        for c in Channel.objects.filter(team_id=incident.team_id, enabled=True)
    ]


def acknowledge(incident_id: int, actor: Any) -> Incident | None:
    """Firing -> acknowledged: repeats and escalation stop; channels that heard are told."""
    with transaction.atomic():
        incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
        if incident is None or incident.state != IncidentState.FIRING:
            return None
        label = actor_label(actor)
        incident.state = IncidentState.ACKNOWLEDGED
        incident.acknowledged_at = timezone.now()
        incident.acknowledged_by = label
        incident.next_repeat_at = None
        incident.escalate_at = None
        incident.save()
        note(incident, TimelineKind.ACKNOWLEDGED, f"acknowledged by {label}", label)
        outbox.queue_follow_up(incident, NotificationAction.ACKNOWLEDGE)
        _publish(IncidentEvent.ACKNOWLEDGED, incident, actor)
    return incident


def resolve(incident: Incident | int, actor: Any, reason: str = "") -> Incident | None:
    """Firing/acknowledged -> resolved. Every channel that heard the trigger hears the resolve,
    silenced or not."""
    incident_id = incident if isinstance(incident, int) else incident.pk
    with transaction.atomic():
        locked = Incident.objects.select_for_update().filter(pk=incident_id).first()
        if locked is None or locked.state not in (
            IncidentState.FIRING,
            IncidentState.ACKNOWLEDGED,
        ):
            return None
        label = actor_label(actor) if actor is not None else ""
        locked.state = IncidentState.RESOLVED
        locked.resolved_at = timezone.now()
        locked.resolved_by = label
        locked.next_repeat_at = None
        locked.escalate_at = None
        locked.save()
        message = reason or (f"resolved by {label}" if label else "condition cleared")
        note(locked, TimelineKind.RESOLVED, message, label or SYSTEM)
        outbox.queue_follow_up(locked, NotificationAction.RESOLVE)
        _publish(IncidentEvent.RESOLVED, locked, actor if actor is not None else SYSTEM)
    return locked


def _publish(action: str, incident: Incident, actor: Any) -> None:
    publish(
        action,
        actor=actor,
        subject=incident,
        team=incident.team,
        service=incident.service,
        environment=incident.environment,
        message=incident.title,
        payload={
            "incident": incident.pk,
            "severity": incident.severity,
            "state": incident.state,
            "rule": incident.rule_id,
            "reason": incident.reason[:500],
        },
    )
