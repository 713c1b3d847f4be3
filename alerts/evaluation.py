"""Alert evaluation: each committed event once, the clock's rechecks, repeats and escalation."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from alerts import subscriptions
from alerts.choices import IncidentState, Severity, TimelineKind
from alerts.incidents import notify
from alerts.models import EvaluatedEvent, Incident, Route, Rule
from alerts.rules import KINDS, LISTENED_ACTIONS, kind_of, kinds_listening
from controlplane.models import Event

logger = logging.getLogger(__name__)

# Events older than this are not evaluated by the catch-up sweep: alerting on an hour-old
# state change would page about something that has long changed again.
CATCH_UP_HORIZON = timedelta(hours=1)
# Give the spine's own hand-off this long before the sweep steps in.
CATCH_UP_GRACE = timedelta(seconds=5)
BATCH = 200
# What alerting reads: the actions rules listen to, and the rollout events subscriptions ask for.
HANDLED_ACTIONS = LISTENED_ACTIONS | subscriptions.ACTIONS


def evaluate_event(event_id: int) -> bool:
    """Run the rules listening to this event, once; False if there was nothing (more) to do."""
    event = (
        Event.objects.select_related("team", "service", "environment").filter(pk=event_id).first()
    )
    if event is None or event.action not in HANDLED_ACTIONS:
        return False
    kinds = kinds_listening(event.action)
    if event.team_id is None:
        # Nobody's event (an external dependency): only the kinds that read such events.
        kinds = [name for name in kinds if KINDS[name].teamless]
        if not kinds:
            return False
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Concurrent evaluations of one event: the second waits for the first to commit
            # and then inserts nothing.
            cursor.execute(
                "INSERT INTO alerts_evaluatedevent (event_id, at) VALUES (%s, now()) "
                "ON CONFLICT DO NOTHING",
                [event_id],
            )
            if cursor.rowcount != 1:
                return False
        rules = Rule.objects.filter(enabled=True, kind__in=kinds).select_related("team")
        if event.team_id is not None:
            rules = rules.filter(team_id=event.team_id)
        for rule in rules.order_by("id"):
            if kind_of(rule).concerns(rule, event):
                kind_of(rule).on_event(rule, event)
        subscriptions.on_event(event)
    return True


def catch_up(now: datetime | None = None) -> int:
    """Evaluate recent events whose hand-off never arrived (a lost message, Redis restarted)."""
    now = now or timezone.now()
    missed = (
        Event.objects.filter(
            action__in=HANDLED_ACTIONS,
            created_at__gte=now - CATCH_UP_HORIZON,
            created_at__lte=now - CATCH_UP_GRACE,
        )
        .filter(~Exists(EvaluatedEvent.objects.filter(event_id=OuterRef("pk"))))
        .order_by("id")
        .values_list("id", flat=True)[:BATCH]
    )
    return sum(1 for event_id in list(missed) if evaluate_event(event_id))


def tick(now: datetime | None = None) -> None:
    """The clock: fire pending incidents whose time came, repeat and escalate unacknowledged
    pages, and notify incidents whose silence ended. Each row is locked with SKIP LOCKED so
    two ticks running at once never handle the same incident."""
    now = now or timezone.now()
    _fire_due(now)
    _repeat(now)
    _escalate(now)
    _unsilence(now)


def _locked(filters: dict[str, object]) -> list[Incident]:
    return list(
        Incident.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(**filters)
        .select_related("rule", "team", "service", "environment")
        .order_by("id")[:BATCH]
    )


def _rechecked(filters: dict[str, object], now: datetime) -> None:
    # No row lock here: the rule decides under the incident's advisory lock (taken before any
    # row lock everywhere, so a tick and an event evaluation never deadlock).
    incidents = (
        Incident.objects.filter(**filters)
        .select_related("rule", "team")
        .order_by("id")
        .iterator(chunk_size=BATCH)
    )
    for incident in incidents:
        try:
            kind_of(incident.rule).recheck(incident.rule, incident, now)
        except Exception:
            logger.exception("rechecking incident %s failed", incident.pk)


def _fire_due(now: datetime) -> None:
    _rechecked({"state": IncidentState.PENDING, "fire_at__lte": now}, now)


def _repeat(now: datetime) -> None:
    with transaction.atomic():
        for incident in _locked(
            {
                "state": IncidentState.FIRING,
                "severity": Severity.PAGE,
                "next_repeat_at__lte": now,
            }
        ):
            incident.next_repeat_at = now + timedelta(seconds=settings.ALERTS_REPEAT_SECONDS)
            incident.save(update_fields=["next_repeat_at"])
            for level in range(incident.escalation_level + 1):
                notify(incident, level, TimelineKind.REPEATED)


def _escalate(now: datetime) -> None:
    with transaction.atomic():
        for incident in _locked({"state": IncidentState.FIRING, "escalate_at__lte": now}):
            level = incident.escalation_level + 1
            if not Route.objects.filter(
                team_id=incident.team_id, severity=incident.severity, escalation_level=level
            ).exists():
                incident.escalate_at = None
                incident.save(update_fields=["escalate_at"])
                continue
            incident.escalation_level = level
            incident.escalate_at = now + timedelta(seconds=settings.ALERTS_ESCALATE_AFTER_SECONDS)
            incident.save(update_fields=["escalation_level", "escalate_at"])
            notify(incident, level, TimelineKind.ESCALATED)


def _unsilence(now: datetime) -> None:
    with transaction.atomic():
        for incident in _locked({"state": IncidentState.FIRING, "notified_at__isnull": True}):
            if incident.suppressed_by:
                notify(incident, 0)


def recheck_open(now: datetime | None = None) -> None:
    """Level-triggered safety net: ask each open incident's rule whether it still holds."""
    now = now or timezone.now()
    _rechecked({"state__in": [IncidentState.FIRING, IncidentState.ACKNOWLEDGED]}, now)


def sweep_rules(now: datetime | None = None) -> None:
    """Kinds judged on the clock (SLO burn): one pass over their enabled rules."""
    now = now or timezone.now()
    clocked = [name for name, kind in KINDS.items() if not kind.listens]
    for rule in Rule.objects.filter(enabled=True, kind__in=clocked).select_related("team"):
        try:
            kind_of(rule).sweep(rule, now)
        except Exception:
            logger.exception("sweeping rule %s failed", rule.pk)


def prune_marks(now: datetime | None = None) -> int:
    now = now or timezone.now()
    deleted, _ = EvaluatedEvent.objects.filter(at__lt=now - 2 * CATCH_UP_HORIZON).delete()
    return deleted
