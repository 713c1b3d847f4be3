"""Query-string filters of the circuits API; an unknown slug or choice answers 400, never []."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from catalog.models import Environment, ExternalDependency, Service, Team
from circuits.choices import AggregateState, ScrapeKind
from circuits.models import Circuit, ScrapeTarget
from controlplane.api import slug_filter


class TargetField(forms.CharField):
    """What a circuit protects, written as the API shows it: `<service>` or `external:<slug>`."""

    def clean(self, value: Any) -> Service | ExternalDependency | None:
        label = super().clean(value)
        if not label:
            return None
        # A bare slug names a service, as `protects` reads in the answers (Circuit.target_label).
        kind, _, slug = label.rpartition(":")
        target: Service | ExternalDependency | None
        if kind == "external":
            target = ExternalDependency.objects.filter(slug=slug).first()
        else:
            target = Service.objects.filter(slug=slug).first()
        if target is None:
            raise forms.ValidationError(
                f"no service or external dependency {label!r}; "
                "use a service slug or external:<slug>"
            )
        return target


@extend_schema_field(OpenApiTypes.STR)
class TargetFilter(filters.Filter):
    """Circuits that protect one service or one external dependency."""

    field_class = TargetField

    def filter(self, qs: QuerySet[Circuit], value: Any) -> QuerySet[Circuit]:
        if value is None:
            return qs
        if isinstance(value, ExternalDependency):
            return qs.filter(protects_external=value)
        return qs.filter(protects_service=value)


class CircuitFilter(filters.FilterSet):
    team = slug_filter(Team.objects.all(), "service__team", "Owner team slug.")
    service = slug_filter(Service.objects.all(), "service", "Owner (calling) service slug.")
    environment = slug_filter(Environment.objects.all(), "environment", "Environment slug.")
    state = filters.ChoiceFilter(choices=AggregateState.choices)
    protects = TargetFilter(help_text="A service slug, or external:<slug>.")

    class Meta:
        model = Circuit
        fields = ["team", "service", "environment", "state", "protects"]


class ScrapeTargetFilter(filters.FilterSet):
    service = slug_filter(Service.objects.all(), "service", "Service slug.")
    environment = slug_filter(Environment.objects.all(), "environment", "Environment slug.")
    kind = filters.ChoiceFilter(choices=ScrapeKind.choices)

    class Meta:
        model = ScrapeTarget
        fields = ["service", "environment", "kind"]
