"""Named states and kinds of alerting; call sites never use the bare strings."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames
from deployments.choices import RolloutEvent
from health.choices import ExternalEvent


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
    EXTERNAL_STATUS = "external_status", "External dependency in outage"


class IncidentState(models.TextChoices):
    # Pending: the condition holds but not yet for the rule's duration; nobody is told.
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (IncidentState.PENDING, IncidentState.FIRING, IncidentState.ACKNOWLEDGED)
NOTIFIED_STATES = (IncidentState.FIRING, IncidentState.ACKNOWLEDGED)
# A root must be at least as urgent as what it holds back: a page never waits on a ticket.
SEVERITY_RANK = {"info": 0, "ticket": 1, "page": 2}


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
    GROUPED = "grouped", "Grouped under its root"
    UNGROUPED = "ungrouped", "Un-grouped"
    AFFECTS = "affects", "Affects a dependent"


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
    OPSGENIE = "opsgenie", "Opsgenie Alert API v2 (acknowledge and close)"
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    EMAIL = "email", "Email"
    # Microsoft Teams, Opsgenie, Discord, Telegram, ntfy, ... by an Apprise URL.
    APPRISE = "apprise", "Apprise URL (Teams, Opsgenie, Discord, Telegram, ~100 more)"


class NotificationAction(models.TextChoices):
    TRIGGER = "trigger", "Trigger"
    ACKNOWLEDGE = "acknowledge", "Acknowledge"
    RESOLVE = "resolve", "Resolve"
    # "Your service is affected by <root>": one heads-up per root and team, never a page.
    AFFECTED = "affected", "Affected by a dependency"
    TEST = "test", "Test"
    # A rollout event a subscription asked for: news, not an incident.
    ROLLOUT = "rollout", "Rollout event"


class RolloutNotice(models.TextChoices):
    """The rollout events a subscription can choose (Argo Rollouts' notification triggers)."""

    STARTED = "started", "Started"
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    PROMOTED = "promoted", "Promoted"
    SUCCEEDED = "succeeded", "Succeeded"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"
    FAILED = "failed", "Failed"


# The deployments event each notice is told on (deployments/choices.py declares them).
ROLLOUT_NOTICES = {
    RolloutEvent.CREATED: RolloutNotice.STARTED,
    RolloutEvent.PAUSED: RolloutNotice.PAUSED,
    RolloutEvent.RESUMED: RolloutNotice.RESUMED,
    RolloutEvent.PROMOTED: RolloutNotice.PROMOTED,
    RolloutEvent.SUCCEEDED: RolloutNotice.SUCCEEDED,
    RolloutEvent.ROLLED_BACK: RolloutNotice.ROLLED_BACK,
    RolloutEvent.ABORTED: RolloutNotice.ABORTED,
    RolloutEvent.FAILED: RolloutNotice.FAILED,
}
# Notices that mean something went wrong: formatted as warnings.
BAD_NOTICES = (
    RolloutNotice.PAUSED,
    RolloutNotice.ROLLED_BACK,
    RolloutNotice.ABORTED,
    RolloutNotice.FAILED,
)
DEFAULT_NOTICES = [
    RolloutNotice.STARTED,
    RolloutNotice.PAUSED,
    RolloutNotice.SUCCEEDED,
    RolloutNotice.ROLLED_BACK,
]


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


# The spine event health's vendor poller publishes when an external dependency changes state
# (declared there, health.choices.ExternalEvent). Payload: dependency, state, previous,
# source, summary, vendor_indicator, our_probe.
EXTERNAL_STATUS_CHANGED = ExternalEvent.STATUS_CHANGED
EXTERNAL_STATES = ("operational", "degraded", "partial_outage", "major_outage", "maintenance")
EXTERNAL_OUTAGE_STATES = ("partial_outage", "major_outage")
# Back to one of these resolves the dependency's incident; maintenance and unknown decide
# nothing (an unknown status page is not a recovery).
EXTERNAL_RECOVERED_STATES = ("operational", "degraded")


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


class AlertSubscriptionEvent(EventNames):
    FAMILY = "alert_subscription."
    CREATED = "alert_subscription.created"
    UPDATED = "alert_subscription.updated"
    DELETED = "alert_subscription.deleted"


RULE_EVENTS = AlertRuleEvent.resource("alert rule")
CHANNEL_EVENTS = AlertChannelEvent.resource("alert channel")
ROUTE_EVENTS = AlertRouteEvent.resource("alert route")
SUBSCRIPTION_EVENTS = AlertSubscriptionEvent.resource("alert subscription")
