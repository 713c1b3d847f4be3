"""Alerts' part of /metrics: open incidents, and the notification outbox's depth and age.
Registered in AlertsConfig.ready; docs/operations.md ("Metrics") lists the label sets."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Metric

from alerts.choices import OPEN_STATES, ChannelKind, DeliveryState, Severity
from alerts.models import Incident, Notification
from controlplane import metrics

UNDELIVERED = (DeliveryState.PENDING, DeliveryState.DELIVERING)


def incidents() -> Iterator[Metric]:
    """One query: open incidents by state and severity (zeros included)."""
    family = metrics.gauge(
        "signalbox_incidents",
        "Open incidents by state (pending, firing, acknowledged) and severity.",
        ["state", "severity"],
    )
    counts = (
        Incident.objects.filter(state__in=OPEN_STATES)
        .values_list("state", "severity")
        .annotate(n=Count("id"))
        .order_by()
    )
    seen = {(state, severity): n for state, severity, n in counts}
    for state in OPEN_STATES:
        for severity in Severity.values:
            family.add_metric([state, severity], seen.get((state, severity), 0))
    yield family


def outbox() -> Iterator[Metric]:
    """One query: undelivered notifications per channel kind and state, and the oldest."""
    now = timezone.now()
    depth = metrics.gauge(
        "signalbox_notifications_undelivered",
        "Notifications in the outbox not yet delivered (pending: waiting for their time or a"
        " retry; delivering: held by a worker), per channel kind.",
        ["kind", "state"],
    )
    age = metrics.gauge(
        "signalbox_notification_oldest_undelivered_age_seconds",
        "Age of the oldest undelivered notification per channel kind (0 when none waits).",
        ["kind"],
    )
    rows = (
        Notification.objects.filter(state__in=UNDELIVERED)
        .values_list("channel__kind", "state")
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .order_by()
    )
    seen = {(kind, state): (n, oldest) for kind, state, n, oldest in rows}
    for kind in ChannelKind.values:
        waiting = [seen[(kind, state)] for state in UNDELIVERED if (kind, state) in seen]
        for state in UNDELIVERED:
            depth.add_metric([kind, state], seen.get((kind, state), (0, None))[0])
        oldest = min((at for _, at in waiting), default=None)
        age.add_metric([kind], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    yield depth
    yield age


def register() -> None:
    metrics.register("incidents", incidents)
    metrics.register("outbox", outbox)
