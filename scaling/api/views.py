"""Scaling API: groups (with their metrics and behaviour), the decisions that moved them,
their launches and terminations, the controls (desired, pause, resume, rolling restart),
and `POST /api/v1/metrics`, where instances report what they know about themselves."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api.base import ID_LOOKUP, ScopedViewSet, service_in_body
from catalog.choices import Scope
from catalog.models import Environment, Service, Team
from catalog.permissions import Access, ScopeRule
from controlplane.api import slug_filter
from scaling import controls, pages, reports
from scaling.api import serializers as s
from scaling.choices import GROUP_EVENTS
from scaling.models import ScalingGroup

# Acting on a group needs `deploy`, like acting on a rollout; changing it needs `write`.
CONTROL = {"POST": Scope.DEPLOY}


class GroupFilter(django_filters.FilterSet):
    service = slug_filter(Service.objects.all(), "service", "a service's slug")
    team = slug_filter(Team.objects.all(), "service__team", "a team's slug")
    environment = slug_filter(Environment.objects.all(), "environment", "an environment's slug")
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = ScalingGroup
        fields = ["service", "team", "environment", "enabled"]


@extend_schema_view(
    list=extend_schema(summary="List scaling groups (filters: service, team, environment)"),
    retrieve=extend_schema(summary="Show a scaling group with its metrics and behaviour"),
    create=extend_schema(summary="Create a scaling group for a service in an environment"),
    partial_update=extend_schema(summary="Change a group (min, max, metrics, behaviour, ...)"),
    destroy=extend_schema(summary="Delete a group (its instances keep running)"),
)
class GroupViewSet(ScopedViewSet):
    """Autoscaling groups. The owning team's owners change them; deployers act on them
    (set desired, pause, resume, rolling restart)."""

    queryset = ScalingGroup.objects.select_related("service", "service__team", "environment")
    serializer_class = s.GroupSerializer
    lookup_value_regex = ID_LOOKUP
    filterset_class = GroupFilter
    events = GROUP_EVENTS

    def get_queryset(self) -> QuerySet[ScalingGroup]:
        return super().get_queryset().prefetch_related("metrics")

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return service_in_body(request)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        groups = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(groups)
        rows = list(page if page is not None else groups)
        context = {**self.get_serializer_context(), "counts": pages.counts_for(rows)}
        data = s.GroupSerializer(rows, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(request=s.DesiredSerializer, summary="Set the instance count by hand")
    @action(detail=True, methods=["post"], url_path="desired", scopes=CONTROL)
    def set_desired(self, request: Request, pk: str) -> Response:
        group = self.get_object()
        body = s.DesiredSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        controls.set_desired(group, body.validated_data["desired"], Access.of(request),
                             body.validated_data.get("reason", ""))  # fmt: skip
        return self._fresh(group)

    @extend_schema(request=s.ReasonSerializer, summary="Pause autoscaling (desired stays)")
    @action(detail=True, methods=["post"], scopes=CONTROL)
    def pause(self, request: Request, pk: str) -> Response:
        group = self.get_object()
        body = s.ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        controls.pause(group, Access.of(request), body.validated_data.get("reason", ""))
        return self._fresh(group)

    @extend_schema(request=None, summary="Resume autoscaling")
    @action(detail=True, methods=["post"], scopes=CONTROL)
    def resume(self, request: Request, pk: str) -> Response:
        group = self.get_object()
        controls.resume(group, Access.of(request))
        return self._fresh(group)

    @extend_schema(
        request=s.ReasonSerializer,
        summary="Rolling restart: replace every instance, one by one, health-gated and drained",
    )
    @action(detail=True, methods=["post"], scopes=CONTROL)
    def restart(self, request: Request, pk: str) -> Response:
        group = self.get_object()
        body = s.ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        controls.start_restart(group, Access.of(request), body.validated_data.get("reason", ""))
        return self._fresh(group)

    @extend_schema(responses=s.DecisionSerializer(many=True), summary="Decisions, newest first")
    @action(detail=True, methods=["get"])
    def decisions(self, request: Request, pk: str) -> Response:
        group = self.get_object()
        return self._page(group.decisions.all(), s.DecisionSerializer)

    @extend_schema(responses=s.LaunchSerializer(many=True), summary="Launches, newest first")
    @action(detail=True, methods=["get"])
    def launches(self, request: Request, pk: str) -> Response:
        return self._page(self.get_object().launches.all(), s.LaunchSerializer)

    @extend_schema(
        responses=s.TerminationSerializer(many=True),
        summary="Terminations with their drain reports, newest first",
    )
    @action(detail=True, methods=["get"])
    def terminations(self, request: Request, pk: str) -> Response:
        return self._page(self.get_object().terminations.all(), s.TerminationSerializer)

    def _page(self, rows: QuerySet[Any], serializer: Any) -> Response:
        page = self.paginate_queryset(rows)
        data = serializer(page if page is not None else rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def _fresh(self, group: ScalingGroup) -> Response:
        group.refresh_from_db()
        return Response(s.GroupSerializer(group).data)


class MetricsView(APIView):
    """POST /api/v1/metrics: instances (or their agents) report values about themselves.

    Batched: `{"metrics": [{"instance": 12, "name": "cpu_percent", "value": 41.5}, ...]}`
    (or the instance by service, environment, host and port). Needs `report` on each
    instance's team. Names the scaler reads: `cpu_percent`, `memory_mb`, `in_flight`,
    `deletion_cost`, `celery_queued`, `celery_active`, and any custom one."""

    permission_classes = [ScopeRule]
    scopes = {"POST": Scope.REPORT}

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return None, None  # a batch may span teams: each value is checked on its own

    @extend_schema(request=s.MetricBatchSerializer, summary="Report metrics (batched)")
    def post(self, request: Request) -> Response:
        body = s.MetricBatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = reports.record(body.validated_data["metrics"], Access.of(request))
        if result.forbidden:
            raise PermissionDenied(result.forbidden)
        if result.refused:
            # Nothing of a batch with a bad value is kept: fix it and send the batch again.
            raise ValidationError(result.refused)
        return Response({"accepted": result.accepted}, status=status.HTTP_202_ACCEPTED)
