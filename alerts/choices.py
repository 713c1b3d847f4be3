"""Named states and kinds of alerting; call sites never use the bare strings."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames


class Severity(models.TextChoices):
    PAGE = "page", "Page"  # wake someone up
    TICKET = "ticket", "Ticket"  # someone should look during working hours
    INFO = "info", "Info"  # worth a message, never urgent


class RuleKind(models.TextChoices):
    SERVICE_STATE = "service_state", "Service down or degraded for a duration"
    INSTANCE_FLAPPING = "instance_flapping", "Instance flapping"
    ROLLOUT_OUTCOME = "rollout_outcome", "Rollout rolled back or failed"
    ROLLOUT_STUCK = "rollout_stuck", "Rollout stuck"
    CIRCUIT_OPEN = "circuit_open", "Circuit open for a duration"
    HEARTBEAT = "heartbeat", "Heartbeat late or failed"
    SLO_BURN = "slo_burn", "SLO burn rate"
    SCALING_CHURN = "scaling_churn", "Scaling group scaled too often (leak or load?)"


class IncidentState(models.TextChoices):
    # Pending: the condition holds but not yet for the rule's duration; nobody is told.
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (IncidentState.PENDING, IncidentState.FIRING, IncidentState.ACKNOWLEDGED)
NOTIFIED_STATES = (IncidentState.FIRING, IncidentState.ACKNOWLEDGED)


class TimelineKind(models.TextChoices):
    PENDING = "pending", "Condition began"
    FIRED = "fired", "Fired"
    NOTIFIED = "notified", "Notification queued"
    SUPPRESSED = "suppressed", "Notification suppressed"
    UNROUTED = "unrouted", "No route"
    REPEATED = "repeated", "Repeated"
    ESCALATED = "escalated", "Escalated"
    DELIVERED = "delivered", "Delivered"
    DELIVERY_FAILED = "delivery_failed", "Delivery failed"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    UPDATED = "updated", "Updated"


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    EMAIL = "email", "Email"


class NotificationAction(models.TextChoices):
    TRIGGER = "trigger", "Trigger"
    ACKNOWLEDGE = "acknowledge", "Acknowledge"
    RESOLVE = "resolve", "Resolve"
    TEST = "test", "Test"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its due time (group wait, backoff)
    DELIVERING = "delivering", "Delivering"  # claimed by a worker holding a lease
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # gave up: a 4xx, or out of attempts
    CANCELLED = "cancelled", "Cancelled"  # its incidents resolved before it was sent


FINISHED_DELIVERY_STATES = (
    DeliveryState.DELIVERED,
    DeliveryState.FAILED,
    DeliveryState.CANCELLED,
)


class MatchOp(models.TextChoices):
    """Silence matcher operators, as in Alertmanager."""

    EQUAL = "=", "equals"
    NOT_EQUAL = "!=", "does not equal"
    REGEX = "=~", "matches regex"
    NOT_REGEX = "!~", "does not match regex"


# The labels an incident carries, which silence matchers can name.
MATCHER_LABELS = ("team", "service", "environment", "rule", "kind", "severity", "subject")


# -- alerting's events -------------------------------------------------------------------------


class IncidentEvent(EventNames):
    FAMILY = "incident."
    FIRING = "incident.firing"
    ACKNOWLEDGED = "incident.acknowledged"
    RESOLVED = "incident.resolved"


class NotificationEvent(EventNames):
    FAMILY = "notification."
    FAILED = "notification.failed"  # gave up: the delivery log says why


class SilenceEvent(EventNames):
    FAMILY = "silence."
    CREATED = "silence.created"
    EXPIRED = "silence.expired"


class AlertRuleEvent(EventNames):
    FAMILY = "alert_rule."
    CREATED = "alert_rule.created"
    UPDATED = "alert_rule.updated"
    DELETED = "alert_rule.deleted"


class AlertChannelEvent(EventNames):
    FAMILY = "alert_channel."
    CREATED = "alert_channel.created"
    UPDATED = "alert_channel.updated"
    DELETED = "alert_channel.deleted"


class AlertRouteEvent(EventNames):
    FAMILY = "alert_route."
    CREATED = "alert_route.created"
    UPDATED = "alert_route.updated"
    DELETED = "alert_route.deleted"


RULE_EVENTS = AlertRuleEvent.resource("alert rule")
CHANNEL_EVENTS = AlertChannelEvent.resource("alert channel")
ROUTE_EVENTS = AlertRouteEvent.resource("alert route")
