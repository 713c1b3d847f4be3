"""Query-string filters of the catalog API; an unknown slug or choice answers 400, never []."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django_filters import rest_framework as filters

from catalog.choices import Lifecycle, Role, Tier
from catalog.models import (
    ApiToken,
    Environment,
    ExternalDependency,
    Instance,
    Invitation,
    Membership,
    Service,
    Team,
)


def _slug(queryset: QuerySet[Any], field: str, help_text: str) -> filters.ModelChoiceFilter:
    return filters.ModelChoiceFilter(
        field_name=field, to_field_name="slug", queryset=queryset, help_text=help_text
    )


class MembershipFilter(filters.FilterSet):
    team = _slug(Team.objects.all(), "team", "Team slug.")
    user = filters.ModelChoiceFilter(
        to_field_name="username", queryset=get_user_model().objects.all(), help_text="Username."
    )
    role = filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["team", "user", "role"]


class EnvironmentFilter(filters.FilterSet):
    class Meta:
        model = Environment
        fields = ["is_production"]


class ServiceFilter(filters.FilterSet):
    team = _slug(Team.objects.all(), "team", "Owner team slug.")
    tier = filters.MultipleChoiceFilter(choices=Tier.choices, help_text="Repeat for several.")
    depends_on = _slug(
        Service.objects.all(), "depends_on", "Services that declare a dependency on this one."
    )
    dependency_of = _slug(
        Service.objects.all(), "dependents", "Services that this one declares it depends on."
    )
    external = _slug(
        ExternalDependency.objects.all(),
        "external_dependencies",
        "Services that depend on this external dependency.",
    )

    class Meta:
        model = Service
        fields = ["team", "tier", "depends_on", "dependency_of", "external"]


class InstanceFilter(filters.FilterSet):
    service = _slug(Service.objects.all(), "service", "Service slug.")
    environment = _slug(Environment.objects.all(), "environment", "Environment slug.")
    team = _slug(Team.objects.all(), "service__team", "Owner team slug.")
    lifecycle = filters.MultipleChoiceFilter(
        choices=Lifecycle.choices, help_text="Repeat for several."
    )
    version = filters.CharFilter()
    zone = filters.CharFilter()
    host = filters.CharFilter()

    class Meta:
        model = Instance
        fields = ["service", "environment", "team", "lifecycle", "version", "zone", "host"]


class TokenFilter(filters.FilterSet):
    team = _slug(Team.objects.all(), "team", "Team slug.")
    service = _slug(Service.objects.all(), "service", "Service slug.")
    active = filters.BooleanFilter(
        method="filter_active", help_text="Only usable (or unusable) tokens."
    )

    class Meta:
        model = ApiToken
        fields = ["team", "service", "active"]

    def filter_active(self, queryset: QuerySet[Any], name: str, value: bool) -> QuerySet[Any]:
        active = ApiToken.objects.active().values("pk")
        return queryset.filter(pk__in=active) if value else queryset.exclude(pk__in=active)


class InvitationFilter(filters.FilterSet):
    team = _slug(Team.objects.all(), "team", "Team slug.")
    pending = filters.BooleanFilter(
        method="filter_pending", help_text="Only invitations whose link still works (or not)."
    )

    class Meta:
        model = Invitation
        fields = ["team", "pending"]

    def filter_pending(self, queryset: QuerySet[Any], name: str, value: bool) -> QuerySet[Any]:
        pending = Invitation.objects.pending().values("pk")
        return queryset.filter(pk__in=pending) if value else queryset.exclude(pk__in=pending)
