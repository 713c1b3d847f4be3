"""Check specs (per service, optionally per instance) and the one state row per instance check."""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from catalog.models import Environment, Instance, Service, Team
from health.choices import CheckKind, CheckStatus, HttpMethod, Scheme, ServiceStatus

# Kubernetes' probe defaults: periodSeconds 10, timeoutSeconds 1, failureThreshold 3,
# successThreshold 1, initialDelaySeconds 0.
DEFAULT_INTERVAL_SECONDS = 10
DEFAULT_TIMEOUT_SECONDS = 1.0
DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_SUCCESS_THRESHOLD = 1
DEFAULT_PATH = "/health"
DEFAULT_EXPECTED_STATUSES = "200-399"


class CheckSpec(models.Model):
    """How to probe a service's instances; a spec on an instance overrides its service's."""

    service = models.OneToOneField(
        Service, on_delete=models.CASCADE, null=True, blank=True, related_name="check_spec"
    )
    instance = models.OneToOneField(
        Instance, on_delete=models.CASCADE, null=True, blank=True, related_name="check_override"
    )
    kind = models.CharField(max_length=8, choices=CheckKind.choices, default=CheckKind.HTTP)
    scheme = models.CharField(max_length=8, choices=Scheme.choices, default=Scheme.HTTP)
    method = models.CharField(max_length=8, choices=HttpMethod.choices, default=HttpMethod.GET)
    port = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="Empty: the instance's own port.",
    )
    path = models.CharField(max_length=500, default=DEFAULT_PATH, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    expected_statuses = models.CharField(max_length=200, default=DEFAULT_EXPECTED_STATUSES)
    body_contains = models.CharField(max_length=500, blank=True)
    body_regex = models.CharField(max_length=500, blank=True)
    json_conditions = models.JSONField(
        default=list, blank=True, help_text='[{"path": "$.status", "op": "eq", "value": "pass"}]'
    )
    max_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    grpc_service = models.CharField(
        max_length=200, blank=True, help_text="grpc.health.v1 service name; empty: the server."
    )
    tls_warn_days = models.PositiveIntegerField(default=14)
    tls_verify = models.BooleanField(default=True)
    interval_seconds = models.PositiveIntegerField(
        default=DEFAULT_INTERVAL_SECONDS, validators=[MinValueValidator(1)]
    )
    timeout_seconds = models.FloatField(default=DEFAULT_TIMEOUT_SECONDS)
    initial_delay_seconds = models.PositiveIntegerField(default=0)
    success_threshold = models.PositiveSmallIntegerField(default=DEFAULT_SUCCESS_THRESHOLD)
    failure_threshold = models.PositiveSmallIntegerField(default=DEFAULT_FAILURE_THRESHOLD)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(service__isnull=False) & Q(instance__isnull=True))
                | (Q(service__isnull=True) & Q(instance__isnull=False)),
                name="checkspec_service_xor_instance",
            )
        ]

    def __str__(self) -> str:
        target = self.service if self.service_id else self.instance
        return f"{self.kind} check of {target}"

    def owning_team(self) -> Team:
        if self.service_id is not None:
            return self.service.team  # type: ignore[union-attr]
        return self.instance.service.team  # type: ignore[union-attr]

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from health.specs import spec_errors

        errors = spec_errors({f.name: getattr(self, f.name) for f in self._meta.concrete_fields})
        if errors:
            raise ValidationError(errors)

    @classmethod
    def default_for(cls, service: Service) -> CheckSpec:
        """An unsaved spec with the defaults, for services nobody configured yet."""
        return cls(service=service)


class InstanceCheck(models.Model):
    """The current state of one instance's check, and when it is due next."""

    instance = models.OneToOneField(Instance, on_delete=models.CASCADE, related_name="health_check")
    status = models.CharField(
        max_length=8, choices=CheckStatus.choices, default=CheckStatus.UNKNOWN
    )
    status_since = models.DateTimeField(default=timezone.now)
    consecutive_successes = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_result = models.CharField(max_length=8, choices=CheckStatus.choices, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_reason = models.CharField(max_length=500, blank=True)
    last_output = models.JSONField(default=dict, blank=True)
    next_due_at = models.DateTimeField(default=timezone.now)
    # Set when a scheduler claims the row; a worker that dies leaves it to expire.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["instance_id"]
        indexes = [models.Index(fields=["next_due_at"], name="instancecheck_due")]

    def __str__(self) -> str:
        return f"check of instance {self.instance_id}: {self.status}"

    def owning_team(self) -> Team:
        return self.instance.service.team

    @property
    def components(self) -> list[dict[str, Any]]:
        return list(self.last_output.get("components", []))


class ServiceHealth(models.Model):
    """A service's derived health in one environment, kept to detect service transitions."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="healths")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="service_healths"
    )
    status = models.CharField(
        max_length=10, choices=ServiceStatus.choices, default=ServiceStatus.UNKNOWN
    )
    since = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=500, blank=True)
    passing = models.PositiveIntegerField(default=0)
    warning = models.PositiveIntegerField(default=0)
    failing = models.PositiveIntegerField(default=0)
    unknown = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service__slug", "environment__order"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"], name="servicehealth_unique_service_env"
            )
        ]
        indexes = [models.Index(fields=["environment", "status"], name="servicehealth_env_status")]

    def __str__(self) -> str:
        return f"{self.service_id}@{self.environment_id}: {self.status}"

    def owning_team(self) -> Team:
        return self.service.team

    @property
    def total(self) -> int:
        return self.passing + self.warning + self.failing + self.unknown
