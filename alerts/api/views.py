"""Alerts API: incidents (acknowledge, resolve), silences, rules, channels (send test), routes."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import channels, silences
from alerts.api import serializers as s
from alerts.api.filters import (
    ChannelFilter,
    IncidentFilter,
    RouteFilter,
    RuleFilter,
    SilenceFilter,
    SubscriptionFilter,
)
from alerts.choices import CHANNEL_EVENTS, ROUTE_EVENTS, RULE_EVENTS, SUBSCRIPTION_EVENTS
from alerts.incidents import acknowledge, resolve
from alerts.models import Channel, Incident, Route, Rule, Silence, Subscription
from catalog.api.base import ID_LOOKUP, READ_WRITE, ScopedViewSet, team_in_body
from catalog.choices import Scope
from catalog.models import Service, Team
from catalog.permissions import Access, ScopeRule
from controlplane.api import ConflictError

RESPOND = {"GET": Scope.READ, "POST": Scope.DEPLOY, "DELETE": Scope.DEPLOY}


@extend_schema_view(
    list=extend_schema(summary="List incidents (filter by state, severity, team, service, env)"),
    retrieve=extend_schema(summary="Show an incident with its timeline"),
)
class IncidentViewSet(viewsets.ReadOnlyModelViewSet[Incident]):
    """Incidents of every team. The owning team's deployers and owners acknowledge and resolve."""

    queryset = (
        Incident.objects.visible()
        .select_related("team", "service", "environment", "rule", "root", "root__team")
        .prefetch_related(
            Prefetch(
                "dependents",
                queryset=Incident.objects.select_related("team", "service", "environment").order_by(
                    "id"
                ),
            )
        )
    )
    serializer_class = s.IncidentSerializer
    permission_classes = [ScopeRule]
    scopes = RESPOND
    lookup_value_regex = ID_LOOKUP
    filterset_class = IncidentFilter

    def get_serializer_class(self) -> Any:
        return s.IncidentDetailSerializer if self.action != "list" else s.IncidentSerializer

    def get_queryset(self) -> QuerySet[Incident]:
        queryset = super().get_queryset()
        return queryset.prefetch_related("timeline") if self.action != "list" else queryset

    @extend_schema(request=None, summary="Acknowledge a firing incident")
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        incident = self.get_object()
        if acknowledge(incident.pk, Access.of(request)) is None:
            raise ConflictError(
                f"incident {incident.pk} is {incident.state}; only a firing "
                "incident can be acknowledged"
            )
        return self._fresh(incident.pk)

    @extend_schema(request=None, summary="Resolve a firing or acknowledged incident")
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        incident = self.get_object()
        if resolve(incident.pk, Access.of(request)) is None:
            raise ConflictError(f"incident {incident.pk} is already {incident.state}")
        return self._fresh(incident.pk)

    def _fresh(self, pk: int) -> Response:
        incident = self.get_queryset().get(pk=pk)
        return Response(s.IncidentDetailSerializer(incident).data)


class TeamOwnedViewSet(ScopedViewSet):
    lookup_value_regex = ID_LOOKUP

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return team_in_body(request)


@extend_schema_view(
    list=extend_schema(summary="List silences"),
    retrieve=extend_schema(summary="Show a silence"),
    create=extend_schema(summary="Silence a team's matching incidents for a time range"),
    destroy=extend_schema(summary="Expire a silence now"),
)
class SilenceViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Any],
):
    """Silences mute notifications (never the incidents, never resolves) of matching incidents.
    The team's deployers and owners create and expire them."""

    queryset = Silence.objects.select_related("team")
    serializer_class = s.SilenceSerializer
    permission_classes = [ScopeRule]
    scopes = RESPOND
    lookup_value_regex = ID_LOOKUP
    filterset_class = SilenceFilter

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return team_in_body(request)

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = silences.open_silence(
            team=data["team"],
            matchers=data["matchers"],
            starts_at=data.get("starts_at"),
            ends_at=data["ends_at"],
            comment=data["comment"],
            actor=Access.of(self.request),
        )

    def perform_destroy(self, instance: Model) -> None:
        assert isinstance(instance, Silence)
        if not silences.expire_silence(instance, Access.of(self.request)):
            raise ConflictError(f"silence {instance.pk} has already expired")


@extend_schema_view(
    list=extend_schema(summary="List alert rules"),
    retrieve=extend_schema(summary="Show an alert rule"),
    create=extend_schema(summary="Create an alert rule"),
    partial_update=extend_schema(summary="Change an alert rule"),
    destroy=extend_schema(summary="Delete an alert rule"),
)
class RuleViewSet(TeamOwnedViewSet):
    """What a team is alerted about. Team owners manage them; the rollback rule stays on."""

    queryset = Rule.objects.select_related("team", "service", "environment")
    serializer_class = s.RuleSerializer
    scopes = READ_WRITE
    filterset_class = RuleFilter
    events = RULE_EVENTS

    def perform_destroy(self, instance: Model) -> None:
        assert isinstance(instance, Rule)
        if instance.is_protected:
            raise ConflictError(
                "a rollback always notifies the owning team: this rule cannot "
                "be deleted; change its severity or routes instead"
            )
        super().perform_destroy(instance)


@extend_schema_view(
    list=extend_schema(summary="List notification channels (secrets masked)"),
    retrieve=extend_schema(summary="Show a channel (secret masked)"),
    create=extend_schema(summary="Create a channel"),
    partial_update=extend_schema(summary="Change a channel (leave secret out to keep it)"),
    destroy=extend_schema(summary="Delete a channel and its routes"),
)
class ChannelViewSet(TeamOwnedViewSet):
    """Where a team's notifications go. Secrets are write-only and shown masked."""

    queryset = Channel.objects.select_related("team")
    serializer_class = s.ChannelSerializer
    scopes = READ_WRITE
    filterset_class = ChannelFilter
    events = CHANNEL_EVENTS

    @extend_schema(request=None, summary="Send a test notification now")
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        channel = self.get_object()
        result = channels.send_test(channel)
        return Response({"ok": result.ok, "status_code": result.status_code, "error": result.error})


@extend_schema_view(
    list=extend_schema(summary="List routes"),
    retrieve=extend_schema(summary="Show a route"),
    create=extend_schema(summary="Route a severity to a channel at an escalation level"),
    partial_update=extend_schema(summary="Change a route"),
    destroy=extend_schema(summary="Delete a route"),
)
class RouteViewSet(TeamOwnedViewSet):
    """Which channel hears a team's incidents of a severity, and at which escalation level."""

    queryset = Route.objects.select_related("team", "channel")
    serializer_class = s.RouteSerializer
    scopes = READ_WRITE
    filterset_class = RouteFilter
    events = ROUTE_EVENTS


@extend_schema_view(
    list=extend_schema(summary="List rollout-event subscriptions"),
    retrieve=extend_schema(summary="Show a subscription"),
    create=extend_schema(summary="Tell a channel about rollout events of the team's services"),
    partial_update=extend_schema(summary="Change a subscription"),
    destroy=extend_schema(summary="Delete a subscription"),
)
class SubscriptionViewSet(TeamOwnedViewSet):
    """Which channel hears of a team's rollouts (started, paused, succeeded, rolled back...),
    as news rather than incidents. Team owners manage them."""

    queryset = Subscription.objects.select_related("team", "channel", "service", "environment")
    serializer_class = s.SubscriptionSerializer
    scopes = READ_WRITE
    filterset_class = SubscriptionFilter
    events = SUBSCRIPTION_EVENTS
