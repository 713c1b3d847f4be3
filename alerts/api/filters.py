"""Query-string filters of the alerts API, named as in the rest of the API (`team`, not
`team__slug`); an unknown slug or choice answers 400, never []."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from alerts.choices import ChannelKind, IncidentState, RuleKind, Severity
from alerts.models import Channel, Incident, Route, Rule, Silence, Subscription
from catalog.models import Environment, Service, Team
from controlplane.api import slug_filter


class IncidentFilter(filters.FilterSet):
    team = slug_filter(Team.objects.all(), "team", "Owner team slug.")
    service = slug_filter(Service.objects.all(), "service", "Service slug.")
    environment = slug_filter(Environment.objects.all(), "environment", "Environment slug.")
    state = filters.ChoiceFilter(choices=IncidentState.choices)
    severity = filters.ChoiceFilter(choices=Severity.choices)

    class Meta:
        model = Incident
        fields = ["team", "service", "environment", "state", "severity"]


class SilenceFilter(filters.FilterSet):
    team = slug_filter(Team.objects.all(), "team", "Owner team slug.")
    active = filters.BooleanFilter(
        method="filter_active", help_text="true: only silences muting now; false: the others."
    )

    class Meta:
        model = Silence
        fields = ["team", "active"]

    def filter_active(
        self, queryset: QuerySet[Silence], name: str, value: bool
    ) -> QuerySet[Silence]:
        active = Silence.objects.active().values("pk")
        return queryset.filter(pk__in=active) if value else queryset.exclude(pk__in=active)


class RuleFilter(filters.FilterSet):
    team = slug_filter(Team.objects.all(), "team", "Owner team slug.")
    service = slug_filter(Service.objects.all(), "service", "Rules about this service.")
    environment = slug_filter(
        Environment.objects.all(), "environment", "Rules about this environment."
    )
    kind = filters.ChoiceFilter(choices=RuleKind.choices)
    severity = filters.ChoiceFilter(choices=Severity.choices)
    enabled = filters.BooleanFilter()

    class Meta:
        model = Rule
        fields = ["team", "service", "environment", "kind", "severity", "enabled"]


class ChannelFilter(filters.FilterSet):
    team = slug_filter(Team.objects.all(), "team", "Owner team slug.")
    kind = filters.ChoiceFilter(choices=ChannelKind.choices)
    enabled = filters.BooleanFilter()

    class Meta:
        model = Channel
        fields = ["team", "kind", "enabled"]


class RouteFilter(filters.FilterSet):
    team = slug_filter(Team.objects.all(), "team", "Owner team slug.")
    severity = filters.ChoiceFilter(choices=Severity.choices)
    channel = filters.ModelChoiceFilter(
        queryset=Channel.objects.all(), help_text="Routes to this channel (its id)."
    )
    enabled = filters.BooleanFilter()

    class Meta:
        model = Route
        fields = ["team", "severity", "channel", "enabled"]


class SubscriptionFilter(filters.FilterSet):
    team = slug_filter(Team.objects.all(), "team", "Owner team slug.")
    channel = filters.ModelChoiceFilter(
        queryset=Channel.objects.all(), help_text="Subscriptions of this channel (its id)."
    )
    service = slug_filter(Service.objects.all(), "service", "Service slug.")
    enabled = filters.BooleanFilter()

    class Meta:
        model = Subscription
        fields = ["team", "channel", "service", "enabled"]
