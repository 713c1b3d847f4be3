"""Circuits API shapes: circuits and their aggregate, instance states, overrides, targets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone
from rest_framework import serializers

from catalog.models import Environment, ExternalDependency, Service
from circuits.choices import OverrideState
from circuits.models import Circuit, CircuitInstanceState, CircuitOverride, ScrapeTarget
from circuits.services import current_state
from controlplane import outbound
from controlplane.api import StrictSerializerMixin


class InstanceStateSerializer(serializers.ModelSerializer[CircuitInstanceState]):
    """One instance's last report of the circuit."""

    # Named like DRF's own `instance` attribute; the metaclass makes it a declared field.
    instance = serializers.CharField(source="instance_key")  # type: ignore[assignment]
    catalog_instance = serializers.IntegerField(source="instance_id", allow_null=True)

    class Meta:
        model = CircuitInstanceState
        fields = [
            "instance",
            "catalog_instance",
            "state",
            "stale",
            "failure_rate",
            "slow_call_rate",
            "calls",
            "failed_calls",
            "slow_calls",
            "rejected_calls",
            "latency_p50_ms",
            "latency_p99_ms",
            "thresholds",
            "source",
            "reported_at",
            "received_at",
            "state_since",
        ]
        read_only_fields = fields


class CircuitSerializer(StrictSerializerMixin, serializers.ModelSerializer[Circuit]):
    """A circuit and its aggregate across instances. Only `protects` can be changed."""

    service: serializers.SlugRelatedField[Service] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    protects = serializers.CharField(
        source="target_label",
        allow_blank=True,
        help_text="`<service slug>`, `external:<slug>`, or empty when unknown.",
    )
    state = serializers.SerializerMethodField(
        help_text="The worst state among fresh instances; `stale` when none reported recently."
    )

    class Meta:
        model = Circuit
        fields = [
            "id",
            "service",
            "environment",
            "name",
            "protects",
            "state",
            "severity",
            "open_instances",
            "total_instances",
            "stale_instances",
            "failure_rate",
            "slow_call_rate",
            "call_volume",
            "rejected_calls",
            "state_changed_at",
            "updated_at",
        ]
        read_only_fields = [f for f in fields if f != "protects"]

    def get_state(self, circuit: Circuit) -> str:
        return current_state(circuit)

    def validate_protects(self, value: str) -> tuple[Service | None, ExternalDependency | None]:
        if not value:
            return None, None
        kind, _, slug = value.rpartition(":")
        if kind in ("", "service"):
            service = Service.objects.filter(slug=slug).first()
            if service is not None:
                return service, None
        if kind in ("", "external"):
            external = ExternalDependency.objects.filter(slug=slug).first()
            if external is not None:
                return None, external
        raise serializers.ValidationError(
            f"no service or external dependency {value!r}; use a service slug or external:<slug>"
        )

    def update(self, instance: Circuit, validated_data: dict[str, Any]) -> Circuit:
        if "target_label" in validated_data:
            instance.protects_service, instance.protects_external = validated_data["target_label"]
            instance.save(update_fields=["protects_service", "protects_external"])
        return instance


class CircuitDetailSerializer(CircuitSerializer):
    instances = InstanceStateSerializer(source="instance_states", many=True, read_only=True)

    class Meta(CircuitSerializer.Meta):
        fields = [*CircuitSerializer.Meta.fields, "instances"]


class OverrideSerializer(StrictSerializerMixin, serializers.ModelSerializer[CircuitOverride]):
    """Force a service's circuit open or closed, in one environment or all, until it expires."""

    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    circuit = serializers.CharField(source="circuit_name", max_length=200)
    environment = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Environment.objects.all(),
        required=False,
        allow_null=True,
        help_text="Omit or null: every environment.",
    )
    state = serializers.ChoiceField(choices=OverrideState.choices)
    reason = serializers.CharField(max_length=500, help_text="Why; shown on the dashboard.")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="At most 30 days ahead."
    )
    ttl_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        write_only=True,
        min_value=60,
        max_value=int(CircuitOverride.MAX_DURATION.total_seconds()),
        help_text="Instead of expires_at: how long from now.",
    )
    created_by = serializers.CharField(source="created_by_label", read_only=True)

    class Meta:
        model = CircuitOverride
        fields = [
            "id",
            "service",
            "circuit",
            "environment",
            "state",
            "reason",
            "expires_at",
            "ttl_seconds",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["id", "created_by", "created_at"]
        # The partial unique index replaces a standing override instead of refusing.
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        ttl = attrs.pop("ttl_seconds", None)
        expires_at = attrs.pop("expires_at", None)
        now = timezone.now()
        if (ttl is None) == (expires_at is None):
            raise serializers.ValidationError({"expires_at": ["give expires_at or ttl_seconds"]})
        if ttl is not None:
            attrs["expires_at"] = now + timedelta(seconds=ttl)
        elif expires_at <= now:
            raise serializers.ValidationError({"expires_at": ["must be in the future"]})
        elif expires_at > now + CircuitOverride.MAX_DURATION:
            raise serializers.ValidationError({"expires_at": ["at most 30 days ahead"]})
        else:
            attrs["expires_at"] = expires_at
        return attrs


class ScrapeTargetSerializer(StrictSerializerMixin, serializers.ModelSerializer[ScrapeTarget]):
    """A URL scraped for circuit states: Prometheus exposition or a Hystrix stream."""

    service = serializers.SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    environment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Environment.objects.all()
    )
    instance_key = serializers.CharField(
        max_length=200, required=False, help_text="Defaults to the URL's host:port."
    )
    interval_seconds = serializers.IntegerField(min_value=5, max_value=3600, default=15)

    class Meta:
        model = ScrapeTarget
        fields = [
            "id",
            "kind",
            "url",
            "service",
            "environment",
            "instance_key",
            "interval_seconds",
            "enabled",
            "origin",
            "last_scraped_at",
            "last_error",
            "consecutive_failures",
            "next_due_at",
        ]
        read_only_fields = [
            "id",
            "origin",
            "last_scraped_at",
            "last_error",
            "consecutive_failures",
            "next_due_at",
        ]

    def validate_url(self, value: str) -> str:
        problem = outbound.refusal(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("instance_key") and "url" in attrs:
            attrs["instance_key"] = urlsplit(attrs["url"]).netloc
        return attrs
