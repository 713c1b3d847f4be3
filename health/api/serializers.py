"""Health API shapes: health reads, check specs, heartbeats, maintenance windows."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from catalog.models import Environment, Instance, Service
from controlplane.api import StrictSerializerMixin
from health.choices import ScheduleKind
from health.models import (
    CheckSpec,
    Heartbeat,
    HeartbeatPing,
    InstanceCheck,
    MaintenanceWindow,
    ServiceHealth,
    Transition,
)
from health.specs import spec_errors


class ServiceHealthSerializer(serializers.ModelSerializer[ServiceHealth]):
    service = serializers.CharField(source="service.slug", read_only=True)
    team = serializers.CharField(source="service.team.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)

    class Meta:
        model = ServiceHealth
        fields = [
            "service",
            "team",
            "environment",
            "status",
            "since",
            "reason",
            "passing",
            "warning",
            "failing",
            "unknown",
        ]


class InstanceHealthSerializer(serializers.ModelSerializer[InstanceCheck]):
    # A field named like DRF's own `instance` attribute: the metaclass moves it into the
    # declared fields, which the stubs cannot know.
    instance = serializers.IntegerField(source="instance_id", read_only=True)  # type: ignore[assignment]
    service = serializers.CharField(source="instance.service.slug", read_only=True)
    environment = serializers.CharField(source="instance.environment.slug", read_only=True)
    address = serializers.CharField(source="instance.address", read_only=True)
    version = serializers.CharField(source="instance.version", read_only=True)
    lifecycle = serializers.CharField(source="instance.lifecycle", read_only=True)
    components = serializers.ListField(read_only=True)

    class Meta:
        model = InstanceCheck
        fields = [
            "instance",
            "service",
            "environment",
            "address",
            "version",
            "lifecycle",
            "status",
            "status_since",
            "last_result",
            "last_checked_at",
            "last_latency_ms",
            "last_reason",
            "components",
            "consecutive_successes",
            "consecutive_failures",
            "next_due_at",
        ]


class TransitionSerializer(serializers.ModelSerializer[Transition]):
    service = serializers.CharField(source="service.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)

    class Meta:
        model = Transition
        fields = [
            "id",
            "level",
            "service",
            "environment",
            "instance",
            "from_status",
            "to_status",
            "reason",
            "in_maintenance",
            "at",
        ]


class SpecValidationMixin:
    """Refuse a spec whose values make no sense together, naming each field and the fix."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current = self.instance  # type: ignore[attr-defined]
        merged = (
            {f.name: getattr(current, f.name) for f in CheckSpec._meta.concrete_fields}
            if current
            else {}
        )
        merged.update(attrs)
        errors = spec_errors({k: v for k, v in merged.items() if v is not None or k == "port"})
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class CheckSpecSerializer(
    StrictSerializerMixin, SpecValidationMixin, serializers.ModelSerializer[CheckSpec]
):
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), required=False, allow_null=True
    )
    instance = serializers.PrimaryKeyRelatedField(  # type: ignore[assignment]
        queryset=Instance.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = CheckSpec
        fields = [
            "id",
            "service",
            "instance",
            "kind",
            "scheme",
            "method",
            "port",
            "path",
            "headers",
            "expected_statuses",
            "body_contains",
            "body_regex",
            "json_conditions",
            "max_latency_ms",
            "grpc_service",
            "tls_warn_days",
            "tls_verify",
            "interval_seconds",
            "timeout_seconds",
            "initial_delay_seconds",
            "success_threshold",
            "failure_threshold",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            if bool(attrs.get("service")) == bool(attrs.get("instance")):
                raise serializers.ValidationError(
                    {"service": "give either service (its default spec) or instance (an override)"}
                )
        elif "service" in attrs or "instance" in attrs:
            raise serializers.ValidationError(
                {"service": "a spec cannot move; delete it and create one for the other target"}
            )
        return super().validate(attrs)


class HeartbeatSerializer(StrictSerializerMixin, serializers.ModelSerializer[Heartbeat]):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all(), required=False, allow_null=True
    )
    ping_url = serializers.SerializerMethodField()

    class Meta:
        model = Heartbeat
        fields = [
            "id",
            "uuid",
            "ping_url",
            "name",
            "service",
            "environment",
            "schedule_kind",
            "period_seconds",
            "cron",
            "timezone",
            "grace_seconds",
            "status",
            "down_reason",
            "last_ping_at",
            "last_ping_kind",
            "last_exit_code",
            "last_duration_seconds",
            "last_log",
            "ping_count",
            "deadline",
            "created_at",
        ]
        read_only_fields = [
            "uuid",
            "status",
            "down_reason",
            "last_ping_at",
            "last_ping_kind",
            "last_exit_code",
            "last_duration_seconds",
            "last_log",
            "ping_count",
            "deadline",
            "created_at",
        ]
        # The unique constraint is checked by the database (409), so environment stays optional.
        validators: list[Any] = []

    def get_ping_url(self, heartbeat: Heartbeat) -> str:
        return settings.SIGNALBOX_BASE_URL + reverse("heartbeat-ping", args=[heartbeat.uuid])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        def get(name: str) -> Any:  # the value after this change: given, else stored
            return attrs.get(name, getattr(self.instance, name, None))

        errors: dict[str, str] = {}
        if get("schedule_kind") == ScheduleKind.CRON:
            cron = get("cron") or ""
            if not croniter.is_valid(cron):
                errors["cron"] = "must be a 5-field cron expression, like '0 3 * * *'"
        elif attrs.get("cron"):
            errors["cron"] = "only for schedule_kind 'cron'"
        if (get("period_seconds") or 86400) < 60:
            errors["period_seconds"] = "must be at least 60 seconds"
        try:
            ZoneInfo(get("timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = "must be an IANA time zone name, like Europe/Berlin"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class HeartbeatPingSerializer(serializers.ModelSerializer[HeartbeatPing]):
    """One ping in a heartbeat's history, newest first; `body` is the log tail as sent."""

    class Meta:
        model = HeartbeatPing
        fields = [
            "n", "at", "kind", "exit_code", "duration_seconds", "body", "remote_addr",
            "user_agent",
        ]  # fmt: skip
        read_only_fields = fields


class MaintenanceWindowSerializer(
    StrictSerializerMixin, serializers.ModelSerializer[MaintenanceWindow]
):
    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all(), required=False, allow_null=True
    )
    active = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
            "service",
            "environment",
            "reason",
            "starts_at",
            "ends_at",
            "cron",
            "timezone",
            "duration_minutes",
            "active",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def get_active(self, window: MaintenanceWindow) -> bool:
        from django.utils import timezone

        return window.is_active_at(timezone.now())

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        def get(name: str) -> Any:  # the value after this change: given, else stored
            return attrs.get(name, getattr(self.instance, name, None))

        errors: dict[str, str] = {}
        if get("cron"):
            if not croniter.is_valid(str(get("cron"))):
                errors["cron"] = "must be a 5-field cron expression, like '0 3 * * 6'"
            if not get("duration_minutes"):
                errors["duration_minutes"] = "a recurring window needs its length in minutes"
            if get("starts_at") or get("ends_at"):
                errors["starts_at"] = "a recurring window has cron + duration, not start/end"
        else:
            starts, ends = get("starts_at"), get("ends_at")
            if not starts or not ends:
                errors["starts_at"] = (
                    "give starts_at and ends_at (one-off) or cron and duration_minutes"
                )
            elif ends <= starts:
                errors["ends_at"] = "must be after starts_at"
        try:
            ZoneInfo(get("timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = "must be an IANA time zone name, like Europe/Berlin"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs
