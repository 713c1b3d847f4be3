"""Rollouts, their steps and measurements, deploy settings, traffic routers and freeze windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from catalog.models import Environment, Service, Team
from controlplane.crypto import EncryptedTextField, mask
from deployments.choices import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Action,
    AnalysisState,
    PauseCause,
    RolloutState,
    RouterKind,
    StepKind,
    StepOutcome,
    Strategy,
    Verdict,
    Weekday,
)
from deployments.schedule import (
    MAX_DURATION_MINUTES,
    covering,
    next_start,
    schedule_label,
    validate_days,
    validate_timezone,
)

DEFAULT_PROGRESS_DEADLINE = 600  # seconds: the "default 10 min"
DEFAULT_ROLLBACK_WINDOW = 600  # seconds blue/green keeps the old side before draining it


class TrafficRouter(models.Model):
    """A load balancer Signalbox drives: an HAProxy runtime API or an AWS ALB."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=RouterKind.choices)
    team = models.ForeignKey(
        Team,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="traffic_routers",
        help_text="The team that owns this router; empty for a platform-wide router.",
    )
    # haproxy: {"socket": "/run/haproxy/admin.sock"} or {"host": "10.0.0.5", "port": 9999}
    # aws_alb: {"region": "eu-west-1", "endpoint_url": ""} (endpoint_url for tests/moto)
    connection = models.JSONField(default=dict, blank=True)
    # aws_alb: "ACCESS_KEY_ID:SECRET_ACCESS_KEY"; empty uses boto3's default chain.
    credentials = EncryptedTextField(blank=True, default="")
    timeout_seconds = models.FloatField(default=2.0)
    retries = models.PositiveSmallIntegerField(default=2)
    reconcile_due_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the drift reconciler may next read this router (its claim).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def owning_team(self) -> Team | None:
        return self.team

    @property
    def masked_credentials(self) -> str:
        return mask(self.credentials or "")


class TrafficRoute(models.Model):
    """Where one service's traffic in one environment is split: a backend or a listener rule."""

    router = models.ForeignKey(TrafficRouter, on_delete=models.CASCADE, related_name="routes")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="traffic_routes")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="traffic_routes"
    )
    # haproxy: the backend whose servers are the service's instances.
    backend = models.CharField(max_length=200, blank=True)
    preview_backend = models.CharField(
        max_length=200, blank=True, help_text="haproxy: a backend sent only to the new version."
    )
    # aws_alb: the rule (or, when empty, the listener's default action) and its two groups.
    listener_arn = models.CharField(max_length=400, blank=True)
    rule_arn = models.CharField(max_length=400, blank=True)
    target_group_arns = models.JSONField(default=list, blank=True)
    add_missing_servers = models.BooleanField(
        default=True,
        help_text="haproxy: add a server for an instance the backend does not list yet.",
    )

    class Meta:
        ordering = ["service__slug", "environment__order"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"], name="trafficroute_one_per_service_env"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service.slug}/{self.environment.slug} via {self.router.name}"

    def owning_team(self) -> Team:
        return self.service.team


class DeploySettings(models.Model):
    """A service's rollout defaults: strategy, steps, analysis and deadlines."""

    service = models.OneToOneField(
        Service, on_delete=models.CASCADE, related_name="deploy_settings"
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.CANARY)
    steps = models.JSONField(
        null=True, blank=True, help_text="Steps used when a rollout names none; empty: defaults."
    )
    analysis = models.JSONField(
        default=list,
        blank=True,
        help_text="Metrics an analysis step runs when it lists none.",
    )
    progress_deadline_seconds = models.PositiveIntegerField(default=DEFAULT_PROGRESS_DEADLINE)
    rollback_window_seconds = models.PositiveIntegerField(default=DEFAULT_ROLLBACK_WINDOW)

    class Meta:
        verbose_name_plural = "deploy settings"

    def __str__(self) -> str:
        return f"deploy settings of {self.service.slug}"

    def owning_team(self) -> Team:
        return self.service.team


class FreezeWindowQuerySet(models.QuerySet["FreezeWindow"]):
    def covering(
        self, environment: Environment, at: datetime | None = None
    ) -> FreezeWindowQuerySet:
        at = at or timezone.now()
        return self.filter(environment=environment, starts_at__lte=at, ends_at__gt=at)


class FreezeWindow(models.Model):
    """A time when an environment takes no new rollouts (unless an owner overrides)."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="freeze_windows"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = FreezeWindowQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="freezewindow_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return (
            f"freeze {self.environment.slug} {self.starts_at:%Y-%m-%d %H:%M}-{self.ends_at:%H:%M}"
        )

    def owning_team(self) -> None:
        return None  # environments are platform-wide: only admins manage their freezes


class RecurringFreezeWindow(models.Model):
    """A weekly freeze of an environment in a local time zone: every Friday 16:00 for 64 h,
    every day 22:00 for 8 h. See deployments/schedule.py for clock changes."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="recurring_freezes"
    )
    name = models.CharField(max_length=100, help_text="Named in the refusal: 'weekend', 'night'.")
    days = ArrayField(
        models.CharField(max_length=3, choices=Weekday.choices),
        validators=[validate_days],
        help_text="Days an occurrence starts on: mon, tue, wed, thu, fri, sat, sun.",
    )
    start_time = models.TimeField(help_text="Local wall-clock time an occurrence starts.")
    duration_minutes = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DURATION_MINUTES)],
        help_text="Wall-clock minutes; may cross midnight and the end of the week.",
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA time zone name, such as Europe/Berlin.",
    )
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__order", "environment__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "name"], name="recurringfreeze_unique_name_per_env"
            ),
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=1)
                & Q(duration_minutes__lte=MAX_DURATION_MINUTES),
                name="recurringfreeze_duration_within_a_week",
            ),
            models.CheckConstraint(condition=~Q(days=[]), name="recurringfreeze_has_days"),
        ]

    def __str__(self) -> str:
        return f"{self.environment.slug} {self.name}: {self.schedule}"

    def owning_team(self) -> None:
        return None  # environments are platform-wide: only admins manage their freezes

    @property
    def schedule(self) -> str:
        return schedule_label(self.days, self.start_time, self.duration_minutes, self.timezone)

    def covering(self, at: datetime) -> tuple[datetime, datetime] | None:
        """(start, end) in UTC of the occurrence covering `at`, or None."""
        return covering(self.days, self.start_time, self.duration_minutes, self.timezone, at)

    def next_start(self, at: datetime) -> datetime | None:
        return next_start(self.days, self.start_time, self.duration_minutes, self.timezone, at)


class RolloutQuerySet(models.QuerySet["Rollout"]):
    def active(self) -> RolloutQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def finished(self) -> RolloutQuerySet:
        return self.filter(state__in=TERMINAL_STATES)


class Rollout(models.Model):
    """One service in one environment moving from its stable version to a new one."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="rollouts")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="rollouts")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="rollouts")
    from_version = models.CharField(max_length=128, blank=True)
    to_version = models.CharField(max_length=128)
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    steps = models.JSONField(default=list)
    analysis = models.JSONField(default=list, blank=True)
    step_index = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(
        max_length=16, choices=RolloutState.choices, default=RolloutState.PENDING
    )
    paused_for = models.CharField(
        max_length=16, choices=PauseCause.choices, default=PauseCause.NONE, blank=True
    )
    ending = models.CharField(
        max_length=16,
        choices=RolloutState.choices,
        blank=True,
        help_text="While rolling back: the terminal state it lands in.",
    )
    message = models.CharField(max_length=1000, blank=True, help_text="Why it is where it is.")
    # Weights are the new version's share of traffic, in percent; stable has the rest.
    desired_weight = models.PositiveSmallIntegerField(default=0)
    applied_weight = models.FloatField(
        null=True, blank=True, help_text="Read back from the router after the last change."
    )
    applied_detail = models.JSONField(default=dict, blank=True)
    router = models.ForeignKey(
        TrafficRoute, on_delete=models.PROTECT, null=True, blank=True, related_name="rollouts"
    )
    router_state = models.JSONField(default=dict, blank=True)
    driver_failures = models.PositiveIntegerField(default=0)
    next_action_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    progress_deadline_seconds = models.PositiveIntegerField(default=DEFAULT_PROGRESS_DEADLINE)
    deadline_at = models.DateTimeField(
        null=True, blank=True, help_text="Rolled back if the current step has not finished by then."
    )
    pause_until = models.DateTimeField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=200, blank=True)
    rollback_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rollbacks"
    )
    actor_label = models.CharField(max_length=200, default="system")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was started.")
    freeze_override_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=Q(state__in=ACTIVE_STATES),
                name="rollout_one_active_per_service_env",
            ),
            models.UniqueConstraint(
                fields=["team", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="rollout_unique_idempotency_key_per_team",
            ),
            models.CheckConstraint(
                condition=Q(desired_weight__lte=100), name="rollout_desired_weight_percent"
            ),
        ]
        indexes = [
            # The reconciler's claim: active rows by due time.
            models.Index(
                fields=["next_action_at"],
                condition=Q(state__in=ACTIVE_STATES),
                name="rollout_due",
            ),
            models.Index(fields=["service", "environment", "-created_at"], name="rollout_history"),
            # The board's recent rollouts, newest finished first: without it the page sorted
            # every finished rollout (20,000 at 10,000 services: ~39 ms of its SQL).
            models.Index(
                F("finished_at").desc(),
                F("id").desc(),
                condition=Q(state__in=TERMINAL_STATES),
                name="rollout_finished",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.service.slug}/{self.environment.slug} → {self.to_version}"

    def get_absolute_url(self) -> str:
        return reverse("deployments:rollout", args=[self.pk])

    def owning_team(self) -> Team:
        return self.team

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def stable_weight(self) -> float | None:
        return None if self.applied_weight is None else round(100 - self.applied_weight, 2)

    @property
    def current_step(self) -> dict[str, Any] | None:
        return self.steps[self.step_index] if self.step_index < len(self.steps) else None

    @property
    def step_label(self) -> str:
        from deployments.strategies import describe_step

        if self.is_terminal:
            return RolloutState(self.state).label
        if self.state == RolloutState.ROLLING_BACK:
            return "rolling back"
        step = self.current_step
        where = f"{min(self.step_index + 1, len(self.steps))}/{len(self.steps)}"
        return f"{where} {describe_step(step)}" if step else f"{where} finalizing"

    def allowed_actions(self) -> list[Action]:
        """What may be asked of this rollout now (the API refuses the rest with 409)."""
        state = RolloutState(self.state)
        if state == RolloutState.SUCCEEDED:
            return [Action.ROLLBACK]
        if state in TERMINAL_STATES:
            return [Action.RETRY]
        if state == RolloutState.ROLLING_BACK:
            return []
        found = [Action.PROMOTE, Action.ABORT, Action.ROLLBACK]
        if state == RolloutState.PAUSED:
            found.insert(0, Action.RESUME)
            if self.paused_for in (PauseCause.INCONCLUSIVE, PauseCause.DRIVER_ERROR):
                found.insert(1, Action.RETRY)
            if self.paused_for != PauseCause.MANUAL:
                found.insert(0, Action.PAUSE)
        else:
            found.insert(0, Action.PAUSE)
        return found

    def deadline(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.progress_deadline_seconds)


class RolloutStep(models.Model):
    """One run of one step of a rollout: when it was due, started and ended, and its weight."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="step_runs")
    index = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=StepKind.choices)
    spec = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(
        max_length=16, choices=StepOutcome.choices, default=StepOutcome.RUNNING
    )
    due_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    desired_weight = models.PositiveSmallIntegerField(null=True, blank=True)
    applied_weight = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["rollout", "index"], name="rolloutstep_rollout_index")]

    def __str__(self) -> str:
        return f"{self.rollout_id} step {self.index} {self.kind} {self.outcome}"


class AnalysisRun(models.Model):
    """The analysis of one step: its metrics, their running counts and the outcome."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="analysis_runs")
    step = models.ForeignKey(
        RolloutStep, on_delete=models.CASCADE, null=True, blank=True, related_name="analysis_runs"
    )
    step_index = models.PositiveSmallIntegerField()
    state = models.CharField(
        max_length=16, choices=AnalysisState.choices, default=AnalysisState.RUNNING
    )
    metrics = models.JSONField(default=list)
    # Per metric name: {"successes", "consecutive", "failures", "inconclusive", "next_at",
    # "passed"} and the provider's baseline, so a worker that picks the run up continues it.
    progress = models.JSONField(default=dict)
    message = models.CharField(max_length=1000, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"analysis of rollout {self.rollout_id} step {self.step_index}: {self.state}"


class Measurement(models.Model):
    """One reading of one metric: its value, the threshold, the verdict and why."""

    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="measurements")
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="measurements")
    metric = models.CharField(max_length=100)
    provider = models.CharField(max_length=32)
    value = models.FloatField(null=True, blank=True)
    threshold = models.CharField(max_length=200, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    reason = models.CharField(max_length=1000, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    measured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["measured_at", "id"]
        indexes = [
            models.Index(fields=["rollout", "-measured_at"], name="measurement_rollout_time")
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.value} {self.verdict}"
