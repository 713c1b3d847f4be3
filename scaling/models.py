"""Scaling groups and their metrics, the decisions made, launches, terminations (with their
drain reports), instances' own protection and reported metrics."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from catalog.models import Environment, Instance, Service, Team
from controlplane.crypto import EncryptedTextField, mask
from scaling.choices import (
    DriverKind,
    Ending,
    LaunchState,
    Reason,
    SelectPolicy,
    Source,
    TerminationState,
)
from scaling.policy import DEFAULT_DOWN, DEFAULT_UP, Direction, RatePolicy

# AWS lifecycle hooks' HeartbeatTimeout bounds and default.
LIFECYCLE_TIMEOUT_MIN, LIFECYCLE_TIMEOUT_DEFAULT, LIFECYCLE_TIMEOUT_MAX = 30, 3600, 7200
DEFAULT_MIN, DEFAULT_MAX = 1, 10
# ECS task scale-in protection's default and maximum (minutes).
PROTECTION_DEFAULT_MINUTES, PROTECTION_MAX_MINUTES = 120, 2880


def _policies_json(direction: Direction) -> list[dict[str, object]]:
    return [policy.to_json() for policy in direction.policies]


def default_up_policies() -> list[dict[str, object]]:
    return _policies_json(DEFAULT_UP)


def default_down_policies() -> list[dict[str, object]]:
    return _policies_json(DEFAULT_DOWN)


class ScalingGroup(models.Model):
    """One service in one environment, scaled between min and max by its metrics.

    The behaviour fields are HPA's (`spec.behavior.scaleUp/scaleDown`), with its defaults."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="scaling_groups")
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="scaling_groups"
    )
    driver = models.CharField(max_length=16, choices=DriverKind.choices)
    # process: {"control_url": "http://127.0.0.1:7900", "version": "1.4.0"};
    # aws_asg: {"region", "auto_scaling_group_name", "port", "target_group_arn",
    #           "lifecycle_hook_name", "endpoint_url"} (docs/scaling.md)
    driver_config = models.JSONField(default=dict, blank=True)
    credentials = EncryptedTextField(blank=True, default="")  # aws_asg: "KEY_ID:SECRET"
    min_instances = models.PositiveIntegerField(default=DEFAULT_MIN)
    max_instances = models.PositiveIntegerField(default=DEFAULT_MAX)
    desired = models.PositiveIntegerField(default=1)
    enabled = models.BooleanField(default=True, help_text="Autoscaling on; off keeps `desired`.")
    paused_reason = models.CharField(max_length=300, blank=True)
    tolerance = models.FloatField(default=0.1, validators=[MinValueValidator(0)])
    sync_seconds = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1)], help_text="HPA's sync period."
    )
    up_stabilization_seconds = models.PositiveIntegerField(default=0)
    up_policies = models.JSONField(default=default_up_policies)
    up_select = models.CharField(
        max_length=8, choices=SelectPolicy.choices, default=SelectPolicy.MAX
    )
    down_stabilization_seconds = models.PositiveIntegerField(default=300)
    down_policies = models.JSONField(default=default_down_policies)
    down_select = models.CharField(
        max_length=8, choices=SelectPolicy.choices, default=SelectPolicy.MAX
    )
    readiness_delay_seconds = models.PositiveIntegerField(
        default=30, help_text="A new instance's metrics count as 0 for scale-up this long."
    )
    launch_deadline_seconds = models.PositiveIntegerField(
        default=300, help_text="A launch not healthy by then is removed and reported."
    )
    drain_timeout_seconds = models.PositiveIntegerField(
        default=60, help_text="How long to wait for the router to confirm a drain."
    )
    lifecycle_timeout_seconds = models.PositiveIntegerField(
        default=LIFECYCLE_TIMEOUT_DEFAULT,
        validators=[
            MinValueValidator(LIFECYCLE_TIMEOUT_MIN),
            MaxValueValidator(LIFECYCLE_TIMEOUT_MAX),
        ],
        help_text="How long an instance may take to say it is ready to terminate "
        "(AWS HeartbeatTimeout); each heartbeat restarts it.",
    )
    termination_grace_seconds = models.PositiveIntegerField(default=30)
    freeze_scale_in_during_rollout = models.BooleanField(default=True)
    stable_pool_only_during_rollout = models.BooleanField(default=True)
    restart_every_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="A rolling restart this often (slow leaks)."
    )
    next_restart_at = models.DateTimeField(null=True, blank=True)
    restart_started_at = models.DateTimeField(null=True, blank=True)
    next_due_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Acting on the count (lifecycle.converge) is claimed on its own, more often than deciding.
    converge_due_at = models.DateTimeField(default=timezone.now)
    converge_lease_until = models.DateTimeField(null=True, blank=True)
    last_decision_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service__slug", "environment__order"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"], name="scaling_group_per_service_env"
            ),
            models.CheckConstraint(
                condition=Q(min_instances__lte=models.F("max_instances")),
                name="scaling_group_min_le_max",
            ),
        ]
        indexes = [models.Index(fields=["next_due_at"], name="scaling_group_due")]

    def __str__(self) -> str:
        return f"{self.service.slug}/{self.environment.slug}"

    def get_absolute_url(self) -> str:
        return reverse("scaling:group", args=[self.pk])

    def owning_team(self) -> Team:
        return self.service.team

    @property
    def masked_credentials(self) -> str:
        return mask(self.credentials or "")

    @property
    def up(self) -> Direction:
        return _direction(self.up_stabilization_seconds, self.up_policies, self.up_select)

    @property
    def down(self) -> Direction:
        return _direction(self.down_stabilization_seconds, self.down_policies, self.down_select)


def _direction(window: int, policies: Any, select: str) -> Direction:
    rates = tuple(
        RatePolicy(str(p["type"]), int(p["value"]), int(p["period_seconds"]))
        for p in (policies or [])
    )
    return Direction(window, rates, select)


class ScalingMetric(models.Model):
    """A target a group tracks (HPA: one `metrics` entry), or a step policy over a metric."""

    group = models.ForeignKey(ScalingGroup, on_delete=models.CASCADE, related_name="metrics")
    source = models.CharField(max_length=16, choices=Source.choices)
    name = models.CharField(
        max_length=100,
        blank=True,
        help_text="custom sources: the reported metric's name (e.g. queue_depth)",
    )
    target = models.FloatField(
        null=True,
        blank=True,
        help_text="Target tracking: the value each instance should hold (totals: carry).",
    )
    # Step policy instead of a target: [{"lower": 80, "upper": null, "change": 2,
    # "kind": "instances"}, ...], read against the metric's average (totals: the total).
    steps = models.JSONField(default=list, blank=True)
    window_seconds = models.PositiveIntegerField(
        default=60, help_text="Readings older than this are not used."
    )

    class Meta:
        ordering = ["group", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["group", "source", "name"], name="scaling_metric_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} on {self.group}"

    @property
    def label(self) -> str:
        return self.name or str(self.source)


class Decision(models.Model):
    """One tick that changed (or refused to change) a group's count, with its inputs."""

    group = models.ForeignKey(ScalingGroup, on_delete=models.CASCADE, related_name="decisions")
    at = models.DateTimeField(default=timezone.now)
    current = models.PositiveIntegerField()
    recommended = models.PositiveIntegerField(null=True, blank=True)
    desired = models.PositiveIntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.AUTOSCALE)
    # [{"metric", "source", "value", "target", "readings", "replicas", "formula"}]
    inputs = models.JSONField(default=list)
    steps = models.JSONField(default=list)  # the explanation, in order
    held_by = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["group", "-at"], name="scaling_decision_recent")]

    def __str__(self) -> str:
        return f"{self.group}: {self.current} -> {self.desired} at {self.at:%H:%M:%S}"


class Recommendation(models.Model):
    """A raw recommendation of a tick, kept for the stabilisation windows (pruned after)."""

    group = models.ForeignKey(
        ScalingGroup, on_delete=models.CASCADE, related_name="recommendations"
    )
    at = models.DateTimeField(default=timezone.now)
    replicas = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["group", "at"], name="scaling_rec_window")]

    def __str__(self) -> str:
        return f"{self.group} recommended {self.replicas}"


class Launch(models.Model):
    """One instance started for a group: it takes traffic only once its checks pass."""

    group = models.ForeignKey(ScalingGroup, on_delete=models.CASCADE, related_name="launches")
    instance = models.OneToOneField(
        Instance, on_delete=models.SET_NULL, null=True, blank=True, related_name="launch"
    )
    driver_ref = models.CharField(max_length=200, help_text="The driver's id of the instance.")
    state = models.CharField(
        max_length=20, choices=LaunchState.choices, default=LaunchState.LAUNCHING
    )
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.AUTOSCALE)
    started_at = models.DateTimeField(default=timezone.now)
    healthy_at = models.DateTimeField(null=True, blank=True)
    in_service_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField()
    message = models.CharField(max_length=500, blank=True)
    last_probe_output = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["group", "state"], name="scaling_launch_state")]

    def __str__(self) -> str:
        return f"launch {self.driver_ref} of {self.group} ({self.state})"


class Termination(models.Model):
    """One instance leaving a group: drained, confirmed, handed the lifecycle, stopped.

    Its drain report: the requests it served during the drain, the 5xx the router saw, the
    seconds until the router stopped routing to it, and how it ended."""

    group = models.ForeignKey(ScalingGroup, on_delete=models.CASCADE, related_name="terminations")
    instance = models.ForeignKey(
        Instance, on_delete=models.SET_NULL, null=True, blank=True, related_name="terminations"
    )
    instance_label = models.CharField(max_length=300)
    driver_ref = models.CharField(max_length=200, blank=True)
    state = models.CharField(
        max_length=20, choices=TerminationState.choices, default=TerminationState.DRAINING
    )
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.AUTOSCALE)
    chosen_because = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    drain_confirmed_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    lifecycle_deadline_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    ending = models.CharField(max_length=12, choices=Ending.choices, blank=True)
    requests_during_drain = models.PositiveIntegerField(null=True, blank=True)
    errors_during_drain = models.PositiveIntegerField(null=True, blank=True)
    seconds_to_stop_routing = models.FloatField(null=True, blank=True)
    router_counters_at_start = models.JSONField(default=dict, blank=True)
    router_counters_last = models.JSONField(default=dict, blank=True)
    # The instance answers the handshake with this (like AWS's LifecycleActionToken).
    token_hash = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["group", "state"], name="scaling_term_state")]
        constraints = [
            models.UniqueConstraint(
                fields=["instance"],
                condition=~Q(state=TerminationState.TERMINATED),
                name="scaling_one_open_termination_per_instance",
            )
        ]

    def __str__(self) -> str:
        return f"termination of {self.instance_label} ({self.state})"

    def report(self) -> dict[str, Any]:
        """The drain report, as events, pages and the API show it."""
        return {
            "instance": self.instance_label,
            "chosen_because": self.chosen_because,
            "requests_during_drain": self.requests_during_drain,
            "errors_during_drain": self.errors_during_drain,
            "seconds_to_stop_routing": self.seconds_to_stop_routing,
            "ending": self.ending,
            "seconds_total": (
                (self.stopped_at - self.started_at).total_seconds() if self.stopped_at else None
            ),
        }


class Protection(models.Model):
    """An instance asking not to be chosen for scale-in for a while (ECS task protection)."""

    instance = models.OneToOneField(Instance, on_delete=models.CASCADE, related_name="protection")
    until = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)
    set_by = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.instance} protected until {self.until:%H:%M}"

    def active(self, now: datetime | None = None) -> bool:
        return self.until > (now or timezone.now())


class InstanceMetric(models.Model):
    """An instance's latest reported value of a metric (CPU, memory, a custom one)."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=100)
    value = models.FloatField()
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instance", "name"], name="instance_metric_latest")
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value:g} on {self.instance_id}"


class MetricMinute(models.Model):
    """Per-minute average of an instance's reported metric: charts, leak detection."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    minute = models.DateTimeField()
    total = models.FloatField()
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "name", "minute"], name="metric_minute_unique"
            )
        ]
        indexes = [models.Index(fields=["name", "minute"], name="metric_minute_name")]

    def __str__(self) -> str:
        return f"{self.name} of {self.instance_id} at {self.minute:%H:%M}"

    @property
    def average(self) -> float:
        return self.total / self.count if self.count else 0.0


def protection_until(minutes: int, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(minutes=minutes)
