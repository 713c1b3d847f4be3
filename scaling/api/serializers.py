"""Scaling API shapes: a group with its metrics and HPA behaviour, decisions, launches,
terminations (drain reports), reported metrics. Strict input, errors naming the field."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework import serializers

from catalog.api.serializers import CatalogSerializer, reference
from catalog.models import Environment, Instance, Service
from controlplane.api import StrictSerializerMixin
from deployments.models import TrafficRoute
from scaling import pages
from scaling.choices import DriverKind, PolicyKind, Source
from scaling.drivers import aws_asg, process
from scaling.models import (
    DEFAULT_MAX,
    DEFAULT_MIN,
    LIFECYCLE_TIMEOUT_MAX,
    LIFECYCLE_TIMEOUT_MIN,
    Decision,
    Launch,
    ScalingGroup,
    ScalingMetric,
    Termination,
)
from scaling.policy import MAX_REPLICAS_LIMIT

MAX_POLICIES = 10
MAX_STEPS = 20
MAX_METRICS = 10


class MetricSerializer(StrictSerializerMixin, serializers.ModelSerializer[ScalingMetric]):
    class Meta:
        model = ScalingMetric
        fields = ["source", "name", "target", "steps", "window_seconds"]

    def validate_target(self, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise serializers.ValidationError("must be above 0: the value one instance should hold")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        source = attrs.get("source")
        steps = attrs.get("steps") or []
        if source in (Source.CUSTOM, Source.CUSTOM_TOTAL) and not attrs.get("name"):
            raise serializers.ValidationError(
                {"name": [f"a {source} metric names the metric services report"]}
            )
        if source not in (Source.CUSTOM, Source.CUSTOM_TOTAL) and attrs.get("name"):
            raise serializers.ValidationError(
                {"name": [f"only custom metrics take a name; {source} reads its own"]}
            )
        if steps and attrs.get("target") is not None:
            raise serializers.ValidationError(
                {"steps": ["give a target (target tracking) or steps (step policy), not both"]}
            )
        if not steps and attrs.get("target") is None:
            raise serializers.ValidationError(
                {"target": ["give the value each instance should hold (above 0), or steps"]}
            )
        if steps:
            attrs["steps"] = _clean_steps(steps)
        return attrs


def _clean_steps(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or len(raw) > MAX_STEPS:
        raise serializers.ValidationError({"steps": [f"a list of at most {MAX_STEPS} steps"]})
    cleaned = []
    for index, step in enumerate(raw):
        where = f"steps.{index}"
        if not isinstance(step, dict) or set(step) - {"lower", "upper", "change", "kind"}:
            raise serializers.ValidationError(
                {where: ['an object: {"lower": 80, "upper": null, "change": 2}']}
            )
        lower, upper, change = step.get("lower"), step.get("upper"), step.get("change")
        for name, bound in (("lower", lower), ("upper", upper)):
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, (int, float))
            ):
                raise serializers.ValidationError({f"{where}.{name}": ["a number or null"]})
        if lower is not None and upper is not None and lower >= upper:
            raise serializers.ValidationError({f"{where}.upper": ["must be above lower"]})
        if isinstance(change, bool) or not isinstance(change, int) or change == 0:
            raise serializers.ValidationError(
                {f"{where}.change": ["a whole number of instances (or percent), not 0"]}
            )
        kind = step.get("kind", PolicyKind.INSTANCES)
        if kind not in PolicyKind.values:
            raise serializers.ValidationError(
                {f"{where}.kind": [f"one of {', '.join(PolicyKind.values)}"]}
            )
        cleaned.append({"lower": lower, "upper": upper, "change": change, "kind": kind})
    return cleaned


def _clean_policies(raw: Any) -> list[dict[str, Any]]:
    """A behaviour's policies; errors keyed by position (the field's validator nests them)."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_POLICIES:
        raise serializers.ValidationError(
            f'a list of 1 to {MAX_POLICIES} policies: [{{"type": "percent", "value": 100, '
            '"period_seconds": 15}]'
        )
    cleaned = []
    for index, policy in enumerate(raw):
        if not isinstance(policy, dict) or set(policy) != {"type", "value", "period_seconds"}:
            raise serializers.ValidationError({str(index): ["give type, value and period_seconds"]})
        if policy["type"] not in PolicyKind.values:
            raise serializers.ValidationError(
                {f"{index}.type": [f"one of {', '.join(PolicyKind.values)}"]}
            )
        for name, low, high in (("value", 1, 10_000), ("period_seconds", 1, 1800)):
            value = policy[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise serializers.ValidationError(
                    {f"{index}.{name}": [f"a whole number from {low} to {high}"]}
                )
        cleaned.append(dict(policy))
    return cleaned


# What a new group gets for the bounds it leaves out (the model's defaults).
_DEFAULTS = {"min_instances": DEFAULT_MIN, "max_instances": DEFAULT_MAX}


class GroupSerializer(CatalogSerializer):
    service = reference(Service.objects.select_related("team"), "service")
    environment = reference(Environment.objects.all(), "environment")
    metrics = MetricSerializer(many=True)
    credentials = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="aws_asg: ACCESS_KEY_ID:SECRET_ACCESS_KEY (empty: boto3's default chain). "
        "Never returned; see credentials_masked.",
    )
    credentials_masked = serializers.CharField(source="masked_credentials", read_only=True)
    instances = serializers.SerializerMethodField(
        help_text="What runs now: in_service, launching, draining (leaving)."
    )
    restarting_since = serializers.DateTimeField(
        source="restart_started_at",
        read_only=True,
        help_text="When the rolling restart in progress started; null when none is.",
    )

    class Meta:
        model = ScalingGroup
        fields = [
            "id",
            "service",
            "environment",
            "driver",
            "driver_config",
            "credentials",
            "credentials_masked",
            "min_instances",
            "max_instances",
            "desired",
            "instances",
            "enabled",
            "paused_reason",
            "restarting_since",
            "metrics",
            "tolerance",
            "sync_seconds",
            "up_stabilization_seconds",
            "up_policies",
            "up_select",
            "down_stabilization_seconds",
            "down_policies",
            "down_select",
            "readiness_delay_seconds",
            "launch_deadline_seconds",
            "drain_timeout_seconds",
            "lifecycle_timeout_seconds",
            "termination_grace_seconds",
            "freeze_scale_in_during_rollout",
            "stable_pool_only_during_rollout",
            "restart_every_seconds",
            "next_restart_at",
            "last_decision_at",
            "created_at",
        ]
        read_only_fields = [
            "desired",
            "enabled",
            "paused_reason",
            "next_restart_at",
            "last_decision_at",
            "created_at",
        ]
        immutable = ["service", "environment"]
        extra_kwargs = {
            "max_instances": {"max_value": MAX_REPLICAS_LIMIT},
            "lifecycle_timeout_seconds": {
                "min_value": LIFECYCLE_TIMEOUT_MIN,
                "max_value": LIFECYCLE_TIMEOUT_MAX,
            },
            "tolerance": {"max_value": 1.0},
        }

    def get_instances(self, group: ScalingGroup) -> dict[str, int]:
        # A list passes every group's counts in the context (one query for the page).
        known = self.context.get("counts") or {}
        counts = known.get(group.pk) or pages.counts_for([group])[group.pk]
        return {
            "in_service": counts.in_service,
            "launching": counts.launching,
            "draining": counts.draining,
        }

    def validate_metrics(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > MAX_METRICS:
            raise serializers.ValidationError(f"at most {MAX_METRICS} metrics")
        seen = set()
        for metric in value:
            key = (metric["source"], metric.get("name", ""))
            if key in seen:
                raise serializers.ValidationError(f"{metric['source']} {key[1]} is listed twice")
            seen.add(key)
        return value

    def validate_up_policies(self, value: Any) -> list[dict[str, Any]]:
        return _clean_policies(value)

    def validate_down_policies(self, value: Any) -> list[dict[str, Any]]:
        return _clean_policies(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        merged = {**_DEFAULTS, **self._merged(attrs)}
        if merged["min_instances"] > merged["max_instances"]:
            raise serializers.ValidationError(
                {"min_instances": [f"must not be above max_instances ({merged['max_instances']})"]}
            )
        service, environment = merged["service"], merged["environment"]
        attrs["driver_config"] = _clean_driver_config(
            merged["driver"], merged.get("driver_config") or {}
        )
        # An ASG with a target group routes its instances itself; others need a route.
        platform_routes = merged["driver"] == DriverKind.AWS_ASG and bool(
            attrs["driver_config"].get("target_group_arn")
        )
        routed = TrafficRoute.objects.filter(service=service, environment=environment).exists()
        if not routed and not platform_routes:
            raise serializers.ValidationError(
                {
                    "service": [
                        f"{service.slug} has no traffic router in {environment.slug}: a scaled "
                        "instance must be given traffic and drained by one (add a traffic "
                        "route, or an aws_asg target_group_arn)"
                    ]
                }
            )
        if merged["driver"] == DriverKind.AWS_ASG and attrs.get("credentials"):
            problem = aws_asg.credentials_problem(attrs["credentials"])
            if problem:
                raise serializers.ValidationError({"credentials": [problem]})
        return attrs

    def duplicate_of(self, attrs: dict[str, Any]) -> dict[str, str]:
        lookups = {"service": attrs["service"], "environment": attrs["environment"]}
        if self._clashes(ScalingGroup, lookups):
            return {
                "service": f"{attrs['service'].slug} already has a scaling group in "
                f"{attrs['environment'].slug}; PATCH it instead"
            }
        return {}

    def create(self, validated_data: dict[str, Any]) -> ScalingGroup:
        metrics = validated_data.pop("metrics")
        validated_data.setdefault("desired", validated_data.get("min_instances", 1))
        with transaction.atomic():
            group: ScalingGroup = super().create(validated_data)
            ScalingMetric.objects.bulk_create(ScalingMetric(group=group, **m) for m in metrics)
        return group

    def update(self, instance: ScalingGroup, validated_data: dict[str, Any]) -> ScalingGroup:
        metrics = validated_data.pop("metrics", None)
        if not validated_data.get("credentials"):
            validated_data.pop("credentials", None)  # left out or blank keeps the stored one
        with transaction.atomic():
            group: ScalingGroup = super().update(instance, validated_data)
            if metrics is not None:
                group.metrics.all().delete()
                ScalingMetric.objects.bulk_create(ScalingMetric(group=group, **m) for m in metrics)
        return group


def _clean_driver_config(driver: str, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise serializers.ValidationError({"driver_config": ["must be an object"]})
    if driver == DriverKind.AWS_ASG:
        try:
            return aws_asg.clean_config(config)
        except aws_asg.ConfigError as exc:
            raise serializers.ValidationError(
                {f"driver_config.{exc.field}": [exc.reason]}
            ) from None
    problems = process.config_problems(config)
    if problems:
        raise serializers.ValidationError({field: [why] for field, why in problems.items()})
    return dict(config)


class DecisionSerializer(serializers.ModelSerializer[Decision]):
    class Meta:
        model = Decision
        fields = [
            "id",
            "at",
            "current",
            "recommended",
            "desired",
            "reason",
            "inputs",
            "steps",
            "held_by",
        ]
        read_only_fields = fields


class LaunchSerializer(serializers.ModelSerializer[Launch]):
    class Meta:
        model = Launch
        fields = [
            "id",
            "instance",
            "driver_ref",
            "state",
            "reason",
            "started_at",
            "healthy_at",
            "in_service_at",
            "deadline_at",
            "message",
            "last_probe_output",
        ]
        read_only_fields = fields


class TerminationSerializer(serializers.ModelSerializer[Termination]):
    report = serializers.SerializerMethodField()

    class Meta:
        model = Termination
        fields = [
            "id",
            "instance",
            "instance_label",
            "state",
            "reason",
            "chosen_because",
            "started_at",
            "drain_confirmed_at",
            "ready_at",
            "stopped_at",
            "ending",
            "message",
            "report",
        ]
        read_only_fields = fields

    def get_report(self, termination: Termination) -> dict[str, Any]:
        return termination.report()


class DesiredSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    desired = serializers.IntegerField(min_value=0, max_value=MAX_REPLICAS_LIMIT)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


class ReasonSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


class ReportedMetricSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """One value: the instance by id, or by its address (as it registered)."""

    instance = serializers.PrimaryKeyRelatedField(queryset=Instance.objects.all(), required=False)
    service = serializers.CharField(required=False)
    environment = serializers.CharField(required=False)
    host = serializers.CharField(required=False, max_length=253)
    port = serializers.IntegerField(required=False, min_value=1, max_value=65535)
    name = serializers.RegexField(r"^[a-z][a-z0-9_.]{0,99}$", max_length=100)
    value = serializers.FloatField()
    at = serializers.DateTimeField(required=False)


MAX_BATCH = 1000  # values per POST: a minute of 16 metrics from 60 instances, with room


class MetricBatchSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    metrics = ReportedMetricSerializer(many=True, allow_empty=False)

    def validate_metrics(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > MAX_BATCH:
            raise serializers.ValidationError(f"at most {MAX_BATCH} values per request")
        return value
