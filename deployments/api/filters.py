"""Query-string filters of the rollouts and freeze-window APIs; an unknown slug or choice
answers 400, never []."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from catalog.models import Environment, Service, Team
from controlplane.api import slug_filter
from deployments.choices import ACTIVE_STATES, RolloutState
from deployments.models import Rollout


class RolloutFilter(filters.FilterSet):
    service = slug_filter(Service.objects.all(), "service", "Service slug.")
    environment = slug_filter(Environment.objects.all(), "environment", "Environment slug.")
    team = slug_filter(Team.objects.all(), "team", "Owner team slug.")
    state = filters.ChoiceFilter(choices=RolloutState.choices)
    active = filters.BooleanFilter(
        method="filter_active", help_text="true: only rollouts still in progress."
    )

    class Meta:
        model = Rollout
        fields = ["service", "environment", "team", "state", "active"]

    def filter_active(
        self, queryset: QuerySet[Rollout], name: str, value: bool
    ) -> QuerySet[Rollout]:
        # active=false has always listed every rollout (the CLI only sends true); `state`
        # picks out the ended ones.
        return queryset.filter(state__in=ACTIVE_STATES) if value else queryset


class FreezeFilter(filters.FilterSet):
    """Shared by one-off and recurring freeze windows (each view brings its own queryset)."""

    environment = slug_filter(Environment.objects.all(), "environment", "Environment slug.")
