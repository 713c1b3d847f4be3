"""Rollout API shapes: what CI sends to start one, and what everyone reads back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from catalog.api.serializers import CatalogSerializer, reference
from catalog.models import Environment
from controlplane.api import StrictSerializerMixin
from deployments.api.schema import MetricsField, StepsField
from deployments.choices import WEEKDAYS, Strategy
from deployments.models import (
    AnalysisRun,
    FreezeWindow,
    Measurement,
    RecurringFreezeWindow,
    Rollout,
    RolloutStep,
)
from deployments.schedule import (
    MAX_DURATION_MINUTES,
    normalize_day,
    utc_iso,
    validate_days,
    validate_duration,
    zone,
)


class RolloutCreateSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """Start a rollout of `service` in `environment` to `version`."""

    service = serializers.SlugField(help_text="The service's slug.")
    environment = serializers.SlugField(help_text="The environment's slug.")
    version = serializers.CharField(max_length=128)
    strategy = serializers.ChoiceField(
        choices=Strategy.choices, required=False, help_text="Default: the service's strategy."
    )
    steps = StepsField(
        required=False, help_text='e.g. [{"set_weight": 10}, {"analysis": {}}, {"set_weight": 100}]'
    )
    analysis = MetricsField(required=False, help_text="Metrics for analysis steps that list none.")
    idempotency_key = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="A retried request with the same key returns the same rollout (200).",
    )
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
    freeze_override_reason = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Owners only: start despite a freeze window, for this recorded reason.",
    )


class ActionSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """An action's optional reason (recorded with the actor); `full` for promote only."""

    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
    full = serializers.BooleanField(
        required=False, default=False, help_text="promote: skip every remaining step."
    )


class MeasurementSerializer(serializers.ModelSerializer[Measurement]):
    class Meta:
        model = Measurement
        fields = ["metric", "provider", "value", "threshold", "verdict", "reason", "measured_at"]


class AnalysisRunSerializer(serializers.ModelSerializer[AnalysisRun]):
    metrics = MetricsField(read_only=True, help_text="With their defaults filled in.")
    measurements = MeasurementSerializer(many=True, read_only=True)

    class Meta:
        model = AnalysisRun
        fields = [
            "id",
            "step_index",
            "state",
            "message",
            "metrics",
            "started_at",
            "finished_at",
            "measurements",
        ]


class RolloutStepSerializer(serializers.ModelSerializer[RolloutStep]):
    class Meta:
        model = RolloutStep
        fields = [
            "index",
            "kind",
            "spec",
            "outcome",
            "due_at",
            "started_at",
            "finished_at",
            "desired_weight",
            "applied_weight",
            "message",
        ]


class RolloutSerializer(serializers.ModelSerializer[Rollout]):
    service = serializers.CharField(source="service.slug", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    step = serializers.CharField(source="step_label", read_only=True)
    stable_weight = serializers.FloatField(read_only=True, allow_null=True)
    terminal = serializers.BooleanField(source="is_terminal", read_only=True)
    steps = StepsField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Rollout
        fields = [
            "id",
            "url",
            "team",
            "service",
            "environment",
            "from_version",
            "to_version",
            "strategy",
            "state",
            "terminal",
            "paused_for",
            "ending",
            "message",
            "step_index",
            "step",
            "steps",
            "desired_weight",
            "applied_weight",
            "stable_weight",
            "next_action_at",
            "deadline_at",
            "progress_deadline_seconds",
            "actor_label",
            "reason",
            "freeze_override_reason",
            "idempotency_key",
            "rollback_of",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: Rollout) -> str:
        request = self.context.get("request")
        path = obj.get_absolute_url()
        return request.build_absolute_uri(path) if request is not None else path


class RolloutDetailSerializer(RolloutSerializer):
    analysis = MetricsField(read_only=True, help_text="Metrics for analysis steps that list none.")
    step_runs = RolloutStepSerializer(many=True, read_only=True)
    analysis_runs = AnalysisRunSerializer(many=True, read_only=True)

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "analysis", "step_runs", "analysis_runs"]
        read_only_fields = fields


class FreezeWindowSerializer(CatalogSerializer):
    """A one-off freeze of an environment, from `starts_at` to `ends_at`."""

    environment = reference(Environment.objects.all(), "environment")
    created_by: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)
    frozen_now = serializers.SerializerMethodField()

    class Meta:
        model = FreezeWindow
        fields = ["id", "environment", "starts_at", "ends_at", "reason", "created_by", "frozen_now"]

    def get_frozen_now(self, obj: FreezeWindow) -> bool:
        now = timezone.now()
        return bool(obj.starts_at <= now < obj.ends_at)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        merged = self._merged(attrs)
        if merged["starts_at"] and merged["ends_at"] and merged["ends_at"] <= merged["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["must be after starts_at"]})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> FreezeWindow:
        window: FreezeWindow = super().create(
            {**validated_data, "created_by": _person(self.context)}
        )
        return window


class DaysField(serializers.ListField):
    """Days of the week as mon..sun (Monday, FRI and friday are read too)."""

    child = serializers.CharField()

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list):
            raise serializers.ValidationError(
                'must be a list of days of the week, like ["fri"] or ["mon", "tue"]'
            )
        days = []
        for value in data:
            try:
                days.append(normalize_day(value))
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None
        try:
            validate_days(days)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return [d for d in WEEKDAYS if d in days]


class RecurringFreezeWindowSerializer(CatalogSerializer):
    """A weekly freeze of an environment: `days` at local `start_time` in `timezone`, for
    `duration_minutes` of wall-clock time (crossing midnight and the week's end as needed)."""

    environment = reference(Environment.objects.all(), "environment")
    days = DaysField(help_text='Days an occurrence starts on, e.g. ["fri"] or ["mon", "tue"].')
    start_time = serializers.TimeField(
        format="%H:%M", input_formats=["%H:%M", "%H:%M:%S"], help_text="Local time, HH:MM."
    )
    duration_minutes = serializers.IntegerField(
        help_text=f"1 to {MAX_DURATION_MINUTES} (a week) minutes of wall-clock time."
    )
    timezone = serializers.CharField(
        max_length=64, required=False, help_text="IANA time zone name; default UTC."
    )
    created_by: Any = serializers.SlugRelatedField(slug_field="username", read_only=True)
    schedule = serializers.CharField(read_only=True)
    frozen_until = serializers.SerializerMethodField(
        help_text="When the occurrence covering now ends (UTC), or null."
    )
    next_starts_at = serializers.SerializerMethodField(
        help_text="When the next occurrence starts (UTC)."
    )

    class Meta:
        model = RecurringFreezeWindow
        fields = [
            "id",
            "environment",
            "name",
            "days",
            "start_time",
            "duration_minutes",
            "timezone",
            "reason",
            "schedule",
            "frozen_until",
            "next_starts_at",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate_duration_minutes(self, value: int) -> int:
        try:
            validate_duration(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value

    def validate_timezone(self, value: str) -> str:
        try:
            zone(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def get_frozen_until(self, obj: RecurringFreezeWindow) -> str | None:
        occurrence = obj.covering(timezone.now())
        return utc_iso(occurrence[1]) if occurrence else None

    def get_next_starts_at(self, obj: RecurringFreezeWindow) -> str | None:
        begins = obj.next_start(timezone.now())
        return utc_iso(begins) if begins else None

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        lookups = {"environment": attrs["environment"], "name": attrs["name"]}
        if self._clashes(RecurringFreezeWindow, lookups):
            return {"name": f"{attrs['environment']} already has a window named {attrs['name']!r}"}
        return {}

    def create(self, validated_data: dict[str, Any]) -> RecurringFreezeWindow:
        window: RecurringFreezeWindow = super().create(
            {**validated_data, "created_by": _person(self.context)}
        )
        return window


def _person(context: Mapping[str, Any]) -> Any:
    request = context.get("request")
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None
