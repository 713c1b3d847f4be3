"""Rules, incidents and their timelines, silences, channels, routes and the notification outbox."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from alerts.choices import (
    NOTIFIED_STATES,
    OPEN_STATES,
    ChannelKind,
    DeliveryState,
    IncidentState,
    MatchOp,
    NotificationAction,
    RuleKind,
    Severity,
    TimelineKind,
)
from catalog.models import Environment, Team
from controlplane.crypto import EncryptedTextField, mask

# How `suppressed_by` reads while an incident is held under its root ("caused by #12 ...").
ROOT_SUPPRESSION = "caused by #"


class Rule(models.Model):
    """A condition worth telling a team about, scoped by service and environment."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.TICKET)
    service = models.ForeignKey(
        "catalog.Service",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rules",
        help_text="Empty: every service of the team.",
    )
    environment = models.ForeignKey(
        "catalog.Environment",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rules",
        help_text="Empty: every environment.",
    )
    production_only = models.BooleanField(
        default=False, help_text="Only environments marked as production."
    )
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # While one of this rule's incidents is held under a dependency's incident (its root),
    # the team still hears "your service is affected by <root>" once per root (not a page).
    notify_affected = models.BooleanField(
        default=True,
        help_text="When held under a dependency's incident, send one heads-up per root.",
    )
    # Set on the rules every team gets, so creating them again finds the existing row.
    default_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__slug", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "default_key"],
                condition=~Q(default_key=""),
                name="alertrule_unique_default_per_team",
            )
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    def owning_team(self) -> Team:
        return self.team

    def in_scope(self, service_id: int | None, environment: Environment | None) -> bool:
        if self.service_id is not None and self.service_id != service_id:
            return False
        if self.production_only and (environment is None or not environment.is_production):
            return False
        return self.environment_id is None or (
            environment is not None and self.environment_id == environment.pk
        )

    @property
    def is_protected(self) -> bool:
        """The team's rollback rule: a rollback always notifies the owning team."""
        from alerts.defaults import ROLLBACK_KEY

        return self.default_key == ROLLBACK_KEY


class IncidentQuerySet(models.QuerySet["Incident"]):
    def open(self) -> IncidentQuerySet:
        return self.filter(state__in=OPEN_STATES)

    def visible(self) -> IncidentQuerySet:
        """Incidents people see: pending ones have not fired and may never."""
        return self.exclude(state=IncidentState.PENDING)


class Incident(models.Model):
    """One occurrence of a rule's condition for one subject, from firing to resolved."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="incidents")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="incidents")
    service = models.ForeignKey(
        "catalog.Service", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    environment = models.ForeignKey(
        "catalog.Environment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subject_type = models.CharField(max_length=60)
    subject_id = models.CharField(max_length=64)
    subject_label = models.CharField(max_length=300)
    dedup_key = models.CharField(max_length=200)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    state = models.CharField(
        max_length=16, choices=IncidentState.choices, default=IncidentState.PENDING
    )
    title = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    fire_at = models.DateTimeField(default=timezone.now)
    fired_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=200, blank=True)  # "" when it cleared by itself
    in_maintenance = models.BooleanField(default=False)
    # Why the last trigger was not sent ("silence 4", "maintenance"); "" when it was.
    suppressed_by = models.CharField(max_length=120, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    next_repeat_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalate_at = models.DateTimeField(null=True, blank=True)
    # The open incident of a dependency that caused this one (kept after the root resolves,
    # as history), and the way there: "web -> checkout -> payments".
    root = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="dependents"
    )
    caused_by_path = models.CharField(max_length=500, blank=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-fire_at", "-id"]
        constraints = [
            # One open incident per rule and subject; resolved ones are history.
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=~Q(state=IncidentState.RESOLVED),
                name="incident_one_open_per_key",
            )
        ]
        indexes = [
            models.Index(fields=["state", "fire_at"], name="incident_state_fire_at"),
            models.Index(fields=["team", "state"], name="incident_team_state"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("alerts:incident", args=[self.pk])

    def owning_team(self) -> Team:
        return self.team

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def is_grouped(self) -> bool:
        """Held under its root: the root is still open, so its page speaks for this one."""
        return (
            self.root is not None
            and self.root.state in NOTIFIED_STATES
            and (self.suppressed_by.startswith(ROOT_SUPPRESSION))
        )

    def open_dependents(self) -> list[Incident]:
        """The incidents this one is the root of and that still fire, oldest first."""
        return list(
            Incident.objects.filter(root=self, state__in=NOTIFIED_STATES)
            .select_related("service", "environment", "team")
            .order_by("fired_at", "id")
        )

    def labels(self) -> dict[str, str]:
        """What silence matchers can name."""
        return {
            "team": self.team.slug,
            "service": self.service.slug if self.service else "",
            "environment": self.environment.slug if self.environment else "",
            "rule": self.rule.name,
            "kind": self.rule.kind,
            "severity": self.severity,
            "subject": self.subject_label,
        }


class TimelineEntry(models.Model):
    """One thing that happened to an incident, shown on its page."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=TimelineKind.choices)
    message = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=200, default="system")

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind} {self.message}"


class SilenceQuerySet(models.QuerySet["Silence"]):
    def active(self, now: Any = None) -> SilenceQuerySet:
        now = now or timezone.now()
        return self.filter(starts_at__lte=now, ends_at__gt=now, expired_at__isnull=True)


class Silence(models.Model):
    """Mutes notifications of a team's incidents that match every matcher, for a time range."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="silences")
    # [{"label": "service", "op": "=", "value": "checkout"}, ...]; see choices.MATCHER_LABELS.
    matchers = models.JSONField(default=list)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    comment = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    objects = SilenceQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["team", "ends_at"], name="silence_team_ends")]

    def __str__(self) -> str:
        return f"silence {self.pk} ({self.team.slug})"

    def owning_team(self) -> Team:
        return self.team

    def is_active(self, now: Any = None) -> bool:
        now = now or timezone.now()
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        """True when every matcher holds for these labels (an empty list matches all)."""
        return all(_matcher_holds(m, labels) for m in self.matchers)

    def expire(self) -> None:
        self.expired_at = timezone.now()
        self.save(update_fields=["expired_at"])


def _matcher_holds(matcher: dict[str, str], labels: dict[str, str]) -> bool:
    value = labels.get(matcher["label"], "")
    op = matcher["op"]
    if op == MatchOp.EQUAL:
        return value == matcher["value"]
    if op == MatchOp.NOT_EQUAL:
        return value != matcher["value"]
    # Anchored like Alertmanager's: "check.*" does not match "precheck".
    found = re.fullmatch(matcher["value"], value) is not None
    return found if op == MatchOp.REGEX else not found


class Channel(models.Model):
    """Where notifications go: Slack, PagerDuty, a webhook, mailboxes or an Apprise URL."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    # Slack: the webhook URL; PagerDuty: the routing key; webhook: the signing secret;
    # Apprise: the whole Apprise URL (it carries the service's tokens).
    secret = EncryptedTextField(blank=True)
    # Where a catalog import read the secret from ({"fromEnv": VAR} or {"fromFile": PATH}),
    # so an export writes the reference back, never the secret; {} when set in the API.
    secret_source = models.JSONField(default=dict, blank=True)
    # Webhook: the target; PagerDuty: the Events API URL ("" for the default).
    url = models.URLField(max_length=500, blank=True)
    # Email: {"to": ["oncall@example.com"]}.
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="channel_unique_team_name")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    def owning_team(self) -> Team:
        return self.team

    @property
    def masked_secret(self) -> str:
        if self.kind == ChannelKind.APPRISE:
            from alerts.notifiers.apprise_urls import redacted

            return redacted(self.secret or "")
        return mask(self.secret or "")


class Route(models.Model):
    """Sends a team's incidents of one severity to a channel, at an escalation level."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="alert_routes")
    severity = models.CharField(max_length=16, choices=Severity.choices)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="routes")
    # 0: told first; 1: told when a page stays unacknowledged past the escalation delay; ...
    escalation_level = models.PositiveSmallIntegerField(default=0)
    # How long to wait for more incidents of the same service before sending one message.
    group_wait_seconds = models.PositiveIntegerField(default=10)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["team__slug", "severity", "escalation_level", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "severity", "channel", "escalation_level"],
                name="route_unique_target",
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.team.slug}: {self.severity} -> {self.channel.name} (L{self.escalation_level})"
        )

    def owning_team(self) -> Team:
        return self.team


class Subscription(models.Model):
    """Tells a channel about a team's rollouts (not incidents), as Argo Rollouts'
    notifications do: chosen events, of one service or all, in one environment or all."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="alert_subscriptions")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="subscriptions")
    # RolloutNotice values, e.g. ["started", "paused", "succeeded", "rolled_back"].
    events = models.JSONField(default=list)
    service = models.ForeignKey(
        "catalog.Service",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_subscriptions",
        help_text="Empty: every service of the team.",
    )
    environment = models.ForeignKey(
        "catalog.Environment",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_subscriptions",
        help_text="Empty: every environment.",
    )
    production_only = models.BooleanField(
        default=False, help_text="Only environments marked as production."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__slug", "channel__name", "id"]

    def __str__(self) -> str:
        return f"{self.team.slug}: rollouts -> {self.channel.name}"

    def owning_team(self) -> Team:
        return self.team

    def wants(self, notice: str, service_id: int | None, environment: Environment | None) -> bool:
        """Whether this event (a notice about a rollout of that service there) is asked for."""
        if not self.enabled or notice not in self.events:
            return False
        if self.service_id is not None and self.service_id != service_id:
            return False
        if self.production_only and (environment is None or not environment.is_production):
            return False
        return self.environment_id is None or (
            environment is not None and self.environment_id == environment.pk
        )


class Notification(models.Model):
    """The outbox: one message to one channel, written in the incident's (or event's)
    transaction."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    incidents = models.ManyToManyField(Incident, blank=True, related_name="notifications")
    action = models.CharField(max_length=16, choices=NotificationAction.choices)
    # Triggers of one channel, team, service and environment join one pending row.
    group_key = models.CharField(max_length=200, blank=True)
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    leased_by = models.CharField(max_length=100, blank=True)
    # A resolve waits for its trigger, so a channel never hears them out of order.
    depends_on = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # A rollout notice: the spine event it tells of, and what it says, kept as written so
    # delivery never depends on rows that may change or go.
    event_id = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # However many subscriptions match, a channel hears of an event once.
            models.UniqueConstraint(
                fields=["channel", "event_id"],
                condition=Q(event_id__isnull=False),
                name="notification_one_per_channel_event",
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=[DeliveryState.PENDING, DeliveryState.DELIVERING]),
                name="notification_due",
            ),
            models.Index(fields=["group_key", "state"], name="notification_group"),
        ]

    def __str__(self) -> str:
        return f"{self.action} to {self.channel} ({self.state})"

    def owning_team(self) -> Team:
        return self.channel.team


class DeliveryAttempt(models.Model):
    """The delivery log: each try at sending a notification, with the response code."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="attempt_log"
    )
    at = models.DateTimeField(default=timezone.now)
    worker = models.CharField(max_length=100)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.notification_id} {self.status_code or self.error}"


class SlackIdentity(models.Model):
    """A Slack user, so slash commands and buttons act with that person's permissions."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="slack_identity"
    )
    slack_team_id = models.CharField(max_length=32)
    slack_user_id = models.CharField(max_length=32)

    class Meta:
        ordering = ["slack_team_id", "slack_user_id"]
        verbose_name_plural = "slack identities"
        constraints = [
            models.UniqueConstraint(
                fields=["slack_team_id", "slack_user_id"], name="slackidentity_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.slack_team_id}/{self.slack_user_id} -> {self.user}"


class EvaluatedEvent(models.Model):
    """Marks an event alerting has evaluated, so a redelivered or swept event counts once."""

    event_id = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"event {self.event_id}"
