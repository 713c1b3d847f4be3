"""Rollout API shapes: what CI sends to start one, and what everyone reads back."""

from __future__ import annotations

from rest_framework import serializers

from controlplane.api import StrictSerializerMixin
from deployments.choices import Strategy
from deployments.models import AnalysisRun, Measurement, Rollout, RolloutStep


class RolloutCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    """Start a rollout of `service` in `environment` to `version`."""

    service = serializers.SlugField(help_text="The service's slug.")
    environment = serializers.SlugField(help_text="The environment's slug.")
    version = serializers.CharField(max_length=128)
    strategy = serializers.ChoiceField(
        choices=Strategy.choices, required=False, help_text="Default: the service's strategy."
    )
    steps = serializers.JSONField(
        required=False, help_text='e.g. [{"set_weight": 10}, {"analysis": {}}, {"set_weight": 100}]'
    )
    analysis = serializers.JSONField(
        required=False, help_text="Metrics for analysis steps that list none."
    )
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


class ActionSerializer(StrictSerializerMixin, serializers.Serializer):
    """An action's optional reason (recorded with the actor); `full` for promote only."""

    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
    full = serializers.BooleanField(
        required=False, default=False, help_text="promote: skip every remaining step."
    )


class MeasurementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Measurement
        fields = ["metric", "provider", "value", "threshold", "verdict", "reason", "measured_at"]


class AnalysisRunSerializer(serializers.ModelSerializer):
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


class RolloutStepSerializer(serializers.ModelSerializer):
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


class RolloutSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.slug", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    step = serializers.CharField(source="step_label", read_only=True)
    stable_weight = serializers.FloatField(read_only=True, allow_null=True)
    terminal = serializers.BooleanField(source="is_terminal", read_only=True)
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
    step_runs = RolloutStepSerializer(many=True, read_only=True)
    analysis_runs = AnalysisRunSerializer(many=True, read_only=True)

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "analysis", "step_runs", "analysis_runs"]
        read_only_fields = fields
