"""Circuits, their state per instance, their history, operators' overrides and scrape targets."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from catalog.models import Environment, ExternalDependency, Instance, Service, Team
from circuits.choices import (
    SEVERITY,
    AggregateState,
    CircuitState,
    OverrideState,
    ScrapeKind,
    Source,
    TargetOrigin,
)

STATE_MAX = 16


class Circuit(models.Model):
    """A circuit breaker in a calling service, guarding its calls to one target, in one environment.

    The aggregate columns are Turbine's view across the instances, recomputed in the same
    transaction as every report that touches the circuit.
    """

    # No single-column indexes where a composite one starts with the column (every report
    # batch rewrites these rows; each index is one more write per row).
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="circuits", db_index=False
    )
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="circuits")
    name = models.CharField(max_length=200)
    protects_service = models.ForeignKey(
        Service,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="protected_by_circuits",
        db_index=False,
    )
    protects_external = models.ForeignKey(
        ExternalDependency,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="protected_by_circuits",
    )
    state = models.CharField(
        max_length=STATE_MAX, choices=AggregateState.choices, default=AggregateState.STALE
    )
    severity = models.SmallIntegerField(default=SEVERITY[AggregateState.STALE])
    open_instances = models.PositiveIntegerField(default=0)
    total_instances = models.PositiveIntegerField(default=0)
    stale_instances = models.PositiveIntegerField(default=0)
    failure_rate = models.FloatField(null=True, blank=True, help_text="percent, by call volume")
    slow_call_rate = models.FloatField(null=True, blank=True, help_text="percent, by call volume")
    call_volume = models.BigIntegerField(default=0)
    rejected_calls = models.BigIntegerField(default=0)
    state_changed_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-severity", "service__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment", "name"], name="circuit_unique_name"
            ),
            models.CheckConstraint(
                condition=Q(protects_service__isnull=True) | Q(protects_external__isnull=True),
                name="circuit_protects_one_target",
            ),
        ]
        indexes = [
            models.Index(fields=["-severity", "name"], name="circuit_severity"),
            models.Index(fields=["protects_service", "environment"], name="circuit_towards"),
        ]

    def __str__(self) -> str:
        return f"{self.service.slug}/{self.name}@{self.environment.slug}"

    def get_absolute_url(self) -> str:
        return reverse("circuits:circuit", args=[self.pk])

    def owning_team(self) -> Team:
        return self.service.team

    @property
    def target_label(self) -> str:
        """What the circuit protects, as `service`, `external:slug`, or '' when unknown."""
        if self.protects_service_id is not None and self.protects_service is not None:
            return self.protects_service.slug
        if self.protects_external_id is not None and self.protects_external is not None:
            return f"external:{self.protects_external.slug}"
        return ""

    @property
    def is_rejecting(self) -> bool:
        return self.state in (AggregateState.OPEN, AggregateState.FORCED_OPEN)


class CircuitInstanceState(models.Model):
    """The last report of one instance's breaker for a circuit (one row per pair)."""

    # Only the primary key and the (circuit, instance) key are indexed, and no indexed
    # column changes on update: every report is then a HOT update (with the table's
    # fillfactor leaving room on each page), which writes no index at all. An instance
    # deleted from the catalog costs one sequential scan here, rarely.
    circuit = models.ForeignKey(
        Circuit, on_delete=models.CASCADE, related_name="instance_states", db_index=False
    )
    # "host:port" for instances in the catalog; any stable name for others.
    instance_key = models.CharField(max_length=200)
    instance = models.ForeignKey(
        Instance,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="circuit_states",
        db_index=False,
    )
    state = models.CharField(max_length=STATE_MAX, choices=CircuitState.choices)
    previous_state = models.CharField(
        max_length=STATE_MAX, blank=True, help_text="the state before the last report (or stale)"
    )
    stale = models.BooleanField(
        default=False, help_text="No report for longer than the stale time; state is the last known"
    )
    failure_rate = models.FloatField(
        null=True, blank=True, help_text="percent; null: too few calls"
    )
    slow_call_rate = models.FloatField(null=True, blank=True)
    calls = models.BigIntegerField(default=0, help_text="calls in the source's recent window")
    failed_calls = models.BigIntegerField(default=0)
    slow_calls = models.BigIntegerField(default=0)
    rejected_calls = models.BigIntegerField(default=0)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p99_ms = models.FloatField(null=True, blank=True)
    thresholds = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.PUSH)
    reported_at = models.DateTimeField(
        help_text="the reporter's timestamp; older reports are ignored"
    )
    received_at = models.DateTimeField(default=timezone.now)
    state_since = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["circuit", "instance_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["circuit", "instance_key"], name="circuit_state_unique_instance"
            )
        ]

    def __str__(self) -> str:
        return f"{self.circuit_id}:{self.instance_key} {self.state}"

    def owning_team(self) -> Team:
        return self.circuit.service.team


class CircuitTransition(models.Model):
    """A change of state, of one instance (instance_key set) or of the whole circuit (blank)."""

    circuit = models.ForeignKey(
        Circuit, on_delete=models.CASCADE, related_name="transitions", db_index=False
    )
    instance_key = models.CharField(max_length=200, blank=True)
    from_state = models.CharField(max_length=STATE_MAX, choices=AggregateState.choices, blank=True)
    to_state = models.CharField(max_length=STATE_MAX, choices=AggregateState.choices)
    at = models.DateTimeField(default=timezone.now)
    failure_rate = models.FloatField(null=True, blank=True)
    calls = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["circuit", "-at"], name="circuit_transition_time")]

    def __str__(self) -> str:
        who = self.instance_key or "circuit"
        return f"{self.circuit_id} {who}: {self.from_state or '-'} -> {self.to_state}"


class CircuitSample(models.Model):
    """One minute of a circuit's aggregate: the chart's and the sparkline's points."""

    circuit = models.ForeignKey(
        Circuit, on_delete=models.CASCADE, related_name="samples", db_index=False
    )
    bucket = models.DateTimeField(help_text="start of the minute")
    failure_rate = models.FloatField(null=True, blank=True)
    slow_call_rate = models.FloatField(null=True, blank=True)
    call_volume = models.BigIntegerField(default=0, help_text="the minute's last aggregate volume")
    rejected_calls = models.BigIntegerField(default=0)
    open_instances = models.PositiveIntegerField(default=0, help_text="the most in the minute")
    total_instances = models.PositiveIntegerField(default=0)
    severity = models.SmallIntegerField(default=0, help_text="the worst in the minute")

    class Meta:
        ordering = ["circuit", "bucket"]
        constraints = [
            models.UniqueConstraint(fields=["circuit", "bucket"], name="circuit_sample_minute")
        ]
        indexes = [models.Index(fields=["bucket"], name="circuit_sample_bucket")]

    def __str__(self) -> str:
        return f"{self.circuit_id}@{self.bucket:%Y-%m-%d %H:%M}"


class CircuitOverrideQuerySet(models.QuerySet["CircuitOverride"]):
    def active(self) -> CircuitOverrideQuerySet:
        return self.filter(cleared_at__isnull=True, expires_at__gt=timezone.now())

    def applying_to(
        self, service: Service, environment: Environment | None
    ) -> CircuitOverrideQuerySet:
        """Overrides for a service; with an environment, those for it and for every environment."""
        queryset = self.filter(service=service)
        if environment is not None:
            queryset = queryset.filter(Q(environment__isnull=True) | Q(environment=environment))
        return queryset


class CircuitOverride(models.Model):
    """An operator forcing a service's circuit open or closed, in one or every environment."""

    MAX_DURATION = timedelta(days=30)

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="circuit_overrides")
    circuit_name = models.CharField(max_length=200)
    environment = models.ForeignKey(
        Environment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="circuit_overrides",
        help_text="empty: every environment",
    )
    state = models.CharField(max_length=16, choices=OverrideState.choices)
    reason = models.CharField(max_length=500)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by_label = models.CharField(max_length=200, blank=True)

    objects = CircuitOverrideQuerySet.as_manager()

    class Meta:
        ordering = ["service__slug", "circuit_name", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "circuit_name", "environment"],
                condition=Q(cleared_at__isnull=True),
                nulls_distinct=False,
                name="circuit_override_one_standing",
            )
        ]

    def __str__(self) -> str:
        where = self.environment.slug if self.environment is not None else "all environments"
        return f"{self.service.slug}/{self.circuit_name} {self.state} ({where})"

    def owning_team(self) -> Team:
        return self.service.team

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None and self.expires_at > timezone.now()


class ScrapeTarget(models.Model):
    """A URL the workers read circuit states from, on a schedule (one per instance and kind).

    Targets derived from instance labels are kept in step with the catalog by a sweep;
    manual ones are added through the API for sources outside the catalog.
    """

    kind = models.CharField(max_length=16, choices=ScrapeKind.choices)
    url = models.URLField(max_length=500)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="scrape_targets")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="scrape_targets"
    )
    instance = models.ForeignKey(
        Instance, on_delete=models.CASCADE, null=True, blank=True, related_name="scrape_targets"
    )
    instance_key = models.CharField(max_length=200)
    origin = models.CharField(
        max_length=16, choices=TargetOrigin.choices, default=TargetOrigin.MANUAL
    )
    interval_seconds = models.PositiveIntegerField(default=15)
    enabled = models.BooleanField(default=True)
    next_due_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_scraped_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Prometheus counters are cumulative: the last values seen, to turn them into window volumes.
    counters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["service__slug", "kind", "url"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "url"], name="scrape_target_unique_url")
        ]
        indexes = [
            models.Index(
                fields=["next_due_at"], condition=Q(enabled=True), name="scrape_target_due"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.url}"

    def owning_team(self) -> Team:
        return self.service.team
