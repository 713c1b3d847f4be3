"""Health API: health of services, instances, teams and environments; history; check specs,
heartbeats and maintenance windows; and the anonymous heartbeat ping."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_filters import rest_framework as df
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, generics, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from catalog.api.base import ScopedViewSet, service_in_body
from catalog.choices import Scope
from catalog.models import Environment, Instance, Service, Team
from catalog.permissions import ScopeRule
from controlplane import changes
from controlplane.api import refuse_unknown_parameters
from controlplane.viewsets import actor_of
from health import heartbeats, rollups, services
from health.api import serializers as s
from health.choices import (
    CHECK_SPEC_EVENTS,
    HEARTBEAT_EVENTS,
    MAINTENANCE_EVENTS,
    CheckStatus,
    PingKind,
    Resolution,
    ServiceStatus,
    TransitionLevel,
)
from health.models import (
    CheckSpec,
    Heartbeat,
    InstanceCheck,
    MaintenanceWindow,
    ServiceHealth,
    Transition,
)

READ = {"GET": Scope.READ}
HISTORY_RANGES = {
    "1h": (timedelta(hours=1), Resolution.MINUTE),
    "24h": (timedelta(hours=24), Resolution.MINUTE),
    "7d": (timedelta(days=7), Resolution.HOUR),
    "30d": (timedelta(days=30), Resolution.HOUR),
}


# -- reads -------------------------------------------------------------------------------


class ServiceHealthFilter(df.FilterSet):
    service = df.CharFilter(field_name="service__slug")
    team = df.CharFilter(field_name="service__team__slug")
    environment = df.CharFilter(field_name="environment__slug")
    status = df.ChoiceFilter(choices=ServiceStatus.choices)


@extend_schema_view(
    list=extend_schema(
        summary="Health of every service per environment (filters: team, environment, status)"
    ),
)
class ServiceHealthViewSet(viewsets.GenericViewSet[ServiceHealth], mixins.ListModelMixin):
    """healthy / degraded / down / unknown per service and environment (docs/health.md)."""

    permission_classes = [ScopeRule]
    scopes = READ
    serializer_class = s.ServiceHealthSerializer
    filterset_class = ServiceHealthFilter
    queryset = ServiceHealth.objects.select_related(
        "service", "service__team", "environment"
    ).order_by("service__slug", "environment__order")


class ServiceHealthDetail(APIView):
    """One service's health in every environment, with uptime and its check spec."""

    permission_classes = [ScopeRule]
    scopes = READ

    @extend_schema(summary="Health, uptime and check spec of one service", responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
        healths = ServiceHealth.objects.filter(service=service).select_related(
            "service", "service__team", "environment"
        )
        spec = services.spec_for_service(service)
        return Response(
            {
                "service": service.slug,
                "team": service.team.slug,
                "environments": [
                    {
                        **s.ServiceHealthSerializer(h).data,
                        "uptime": rollups.uptime(service.pk, h.environment_id),
                    }
                    for h in healths
                ],
                "check": s.CheckSpecSerializer(spec).data,
            }
        )


class InstanceHealthFilter(df.FilterSet):
    service = df.CharFilter(field_name="instance__service__slug")
    team = df.CharFilter(field_name="instance__service__team__slug")
    environment = df.CharFilter(field_name="instance__environment__slug")
    status = df.ChoiceFilter(choices=CheckStatus.choices)


@extend_schema_view(
    list=extend_schema(
        summary="Check state of every instance (filter: service, team, environment, status)"
    ),
    retrieve=extend_schema(summary="Check state of one instance, with its health+json components"),
)
class InstanceHealthViewSet(viewsets.ReadOnlyModelViewSet[InstanceCheck]):
    permission_classes = [ScopeRule]
    scopes = READ
    serializer_class = s.InstanceHealthSerializer
    filterset_class = InstanceHealthFilter
    lookup_field = "instance_id"
    lookup_url_kwarg = "pk"
    queryset = InstanceCheck.objects.select_related(
        "instance", "instance__service", "instance__environment"
    ).order_by("instance__service__slug", "instance__host", "instance__port")


def _summary_data(summary: services.Summary | None) -> dict[str, Any]:
    summary = summary or services.Summary()
    return {
        "status": summary.status,
        "services": {status: summary.counts[status] for status in ServiceStatus.values},
    }


class TeamHealthList(generics.GenericAPIView[Team]):
    """Per team and environment: how many services are healthy, degraded, down, unknown."""

    permission_classes = [ScopeRule]
    scopes = READ
    queryset = Team.objects.order_by("slug")

    @extend_schema(summary="Health rolled up per team and environment", responses={200: dict})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None
        environments = list(Environment.objects.all())
        summaries = services.team_summaries()
        return self.get_paginated_response(
            [
                {
                    "team": team.slug,
                    "environments": [
                        {"environment": env.slug, **_summary_data(summaries.get((team.pk, env.pk)))}
                        for env in environments
                    ],
                }
                for team in page
            ]
        )


class EnvironmentHealthList(generics.GenericAPIView[Environment]):
    """Per environment: service health counts."""

    permission_classes = [ScopeRule]
    scopes = READ
    queryset = Environment.objects.all()

    @extend_schema(summary="Health rolled up per environment", responses={200: dict})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None
        summaries = services.environment_summaries()
        return self.get_paginated_response(
            [{"environment": env.slug, **_summary_data(summaries.get(env.pk))} for env in page]
        )


class HistoryView(APIView):
    """Chart series for one service in one environment: per-minute up to a day, then hourly."""

    permission_classes = [ScopeRule]
    scopes = READ
    query_parameters = ("service", "environment", "range")

    @extend_schema(
        summary="Availability and latency series of a service in an environment",
        parameters=[
            OpenApiParameter("service", str, required=True),
            OpenApiParameter("environment", str, required=True),
            OpenApiParameter("range", str, enum=list(HISTORY_RANGES), default="24h"),
        ],
        responses={
            200: dict,
            400: OpenApiResponse(description="service or environment missing, or a bad range"),
            404: OpenApiResponse(description="no such service or environment"),
        },
    )
    def get(self, request: Request) -> Response:
        refuse_unknown_parameters(request, self)
        errors: dict[str, str] = {}
        for name in ("service", "environment"):
            if not request.query_params.get(name):
                errors[name] = "required: a slug"
        span_name = request.query_params.get("range", "24h")
        if span_name not in HISTORY_RANGES:
            errors["range"] = f"must be one of {', '.join(HISTORY_RANGES)}"
        if errors:
            raise exceptions.ValidationError(errors)
        service = get_object_or_404(Service, slug=request.query_params["service"])
        environment = get_object_or_404(Environment, slug=request.query_params["environment"])
        span, resolution = HISTORY_RANGES[span_name]
        now = timezone.now()
        points = rollups.series(service.pk, environment.pk, now - span, now, resolution)
        return Response(
            {
                "service": service.slug,
                "environment": environment.slug,
                "range": span_name,
                "resolution": resolution,
                "uptime": rollups.uptime(service.pk, environment.pk, now),
                "points": [
                    {
                        "at": p.at.isoformat(),
                        "count": p.count,
                        "failures": p.failures,
                        "warnings": p.warnings,
                        "availability": p.availability,
                        "p50_ms": p.p50_ms,
                        "p95_ms": p.p95_ms,
                        "max_ms": p.max_ms,
                    }
                    for p in points
                ],
            }
        )


class TransitionFilter(df.FilterSet):
    service = df.CharFilter(field_name="service__slug")
    environment = df.CharFilter(field_name="environment__slug")
    team = df.CharFilter(field_name="service__team__slug")
    instance = df.NumberFilter(field_name="instance_id")
    level = df.ChoiceFilter(choices=TransitionLevel.choices)
    in_maintenance = df.BooleanFilter()
    since = df.IsoDateTimeFilter(field_name="at", lookup_expr="gte")


@extend_schema_view(
    list=extend_schema(summary="State changes of instances and services, newest first")
)
class TransitionViewSet(viewsets.GenericViewSet[Transition], mixins.ListModelMixin):
    permission_classes = [ScopeRule]
    scopes = READ
    serializer_class = s.TransitionSerializer
    filterset_class = TransitionFilter
    queryset = Transition.objects.select_related("service", "environment")


# -- writes ------------------------------------------------------------------------------


def _body(request: Request, name: str) -> Any:
    data = request.data
    return data.get(name) if isinstance(data, Mapping) else None


class CheckSpecFilter(df.FilterSet):
    service = df.CharFilter(field_name="service__slug")
    instance = df.NumberFilter(field_name="instance_id")
    team = df.CharFilter(method="by_team")

    def by_team(self, queryset: QuerySet[CheckSpec], name: str, value: str) -> QuerySet[CheckSpec]:
        return queryset.filter(service__team__slug=value) | queryset.filter(
            instance__service__team__slug=value
        )


@extend_schema_view(
    list=extend_schema(summary="Check specs (filter: service, instance, team)"),
    create=extend_schema(summary="Create a check spec for a service or an instance override"),
    retrieve=extend_schema(summary="Show a check spec"),
    partial_update=extend_schema(
        summary="Change a check spec; invalid values answer 400 per field"
    ),
    destroy=extend_schema(summary="Delete a spec (a service's goes back to the defaults)"),
)
class CheckSpecViewSet(ScopedViewSet):
    """How a service's instances are probed; an instance's spec overrides its service's."""

    serializer_class = s.CheckSpecSerializer
    filterset_class = CheckSpecFilter
    queryset = CheckSpec.objects.select_related(
        "service", "service__team", "instance__service__team"
    )
    events = CHECK_SPEC_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        team, service = service_in_body(request)
        instance_id = _body(request, "instance")
        if service is None and isinstance(instance_id, int):
            instance = (
                Instance.objects.select_related("service__team").filter(pk=instance_id).first()
            )
            if instance is not None:
                return instance.service.team, instance.service
        return team, service

    def conflict_message(self, serializer: BaseSerializer[Any]) -> str:
        data = serializer.validated_data
        target = data.get("service") or data.get("instance")
        existing = CheckSpec.objects.filter(
            service=data.get("service"), instance=data.get("instance")
        ).first()
        where = f" (id {existing.pk}): PATCH it instead" if existing else ""
        return f"{target} already has a check spec{where}"


@extend_schema_view(
    list=extend_schema(summary="Heartbeats of cron and batch jobs"),
    create=extend_schema(summary="Create a heartbeat; its ping URL is in the answer"),
    retrieve=extend_schema(summary="Show a heartbeat"),
    partial_update=extend_schema(summary="Change a heartbeat's schedule or grace"),
    destroy=extend_schema(summary="Delete a heartbeat"),
)
class HeartbeatViewSet(ScopedViewSet):
    serializer_class = s.HeartbeatSerializer
    queryset = Heartbeat.objects.select_related("service", "service__team", "environment")
    filterset_fields = {"service__slug": ["exact"], "status": ["exact"]}
    events = HEARTBEAT_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return service_in_body(request)

    def conflict_message(self, serializer: BaseSerializer[Any]) -> str:
        return "this service already has a heartbeat with that name in that environment"

    @extend_schema(
        request=None,
        responses={200: s.HeartbeatPingSerializer(many=True)},
        summary="A heartbeat's last pings (up to 100), newest first: kind, exit code, log tail",
    )
    @action(
        detail=True,
        methods=["get"],
        scopes={"GET": Scope.READ},
        serializer_class=s.HeartbeatPingSerializer,
        filterset_fields=None,
        filter_backends=[],
    )
    def pings(self, request: Request, pk: str) -> Response:
        heartbeat = self.get_object()
        page = self.paginate_queryset(heartbeat.pings.order_by("-n"))
        return self.get_paginated_response(s.HeartbeatPingSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={200: s.HeartbeatSerializer},
        summary="Pause a heartbeat: silence stops counting until it is resumed or pinged",
    )
    @action(detail=True, methods=["post"], scopes={"POST": Scope.WRITE})
    def pause(self, request: Request, pk: str) -> Response:
        heartbeat = self.get_object()
        heartbeats.pause(heartbeat, actor=actor_of(request))
        return Response(s.HeartbeatSerializer(heartbeat).data)

    @extend_schema(
        request=None,
        responses={200: s.HeartbeatSerializer},
        summary="Resume a paused heartbeat (due a period plus grace from now)",
    )
    @action(detail=True, methods=["post"], scopes={"POST": Scope.WRITE})
    def resume(self, request: Request, pk: str) -> Response:
        heartbeat = self.get_object()
        heartbeats.resume(heartbeat, actor=actor_of(request))
        return Response(s.HeartbeatSerializer(heartbeat).data)


@extend_schema_view(
    list=extend_schema(summary="Maintenance windows"),
    create=extend_schema(
        summary="Create a one-off (start/end) or recurring (cron + duration) window"
    ),
    retrieve=extend_schema(summary="Show a maintenance window"),
    partial_update=extend_schema(summary="Change a maintenance window"),
    destroy=extend_schema(summary="Delete a maintenance window"),
)
class MaintenanceWindowViewSet(ScopedViewSet):
    serializer_class = s.MaintenanceWindowSerializer
    queryset = MaintenanceWindow.objects.select_related("service", "service__team", "environment")
    filterset_fields = {"service__slug": ["exact"]}
    events = MAINTENANCE_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return service_in_body(request)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        user = self.request.user
        changes.create(
            serializer,
            actor=actor_of(self.request),
            events=self.events,
            created_by=user if user.is_authenticated else None,
        )


# -- the ping ----------------------------------------------------------------------------


class AnyoneWithTheKey(BasePermission):
    """Heartbeat pings are anonymous by design, as in Healthchecks.io: the uuid in the URL
    is the secret (122 random bits), so cron jobs need no token. Nothing else is allowed
    through this rule: the view only records a ping for the heartbeat the uuid names."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return True


class PingView(APIView):
    """POST /api/v1/heartbeats/<uuid>[/start|/fail|/log|/<exit code>]; the body is the log tail."""

    permission_classes = [AnyoneWithTheKey]
    # No authentication: no session (so no CSRF), no token lookup; one query per ping.
    authentication_classes: list[Any] = []
    # API throttling is per token or person (identity.throttling); a ping is neither, so
    # the default throttle lets it through anyway: saying so keeps the fast path on.
    throttle_classes: list[Any] = []
    kind = PingKind.SUCCESS

    @extend_schema(
        operation_id="heartbeat_ping",
        summary="Ping a heartbeat (anonymous: the uuid is the secret)",
        request={"text/plain": str},
        responses={
            200: OpenApiResponse(description="OK"),
            404: OpenApiResponse(description="no such heartbeat"),
        },
    )
    def post(self, request: Request, key: uuid.UUID, exit_code: int | None = None) -> HttpResponse:
        status = heartbeats.ping(
            key,
            self.kind,
            exit_code,
            request.body,
            remote_addr=request.META.get("REMOTE_ADDR"),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        if status is None:
            raise exceptions.NotFound("no heartbeat has this uuid")
        return HttpResponse("OK\n", content_type="text/plain")


@extend_schema_view(
    post=extend_schema(
        operation_id="heartbeat_ping_start",
        summary="A job started: it must finish within the grace",
    )
)
class PingStartView(PingView):
    kind = PingKind.START


@extend_schema_view(post=extend_schema(operation_id="heartbeat_ping_fail", summary="A job failed"))
class PingFailView(PingView):
    kind = PingKind.FAIL


@extend_schema_view(
    post=extend_schema(
        operation_id="heartbeat_ping_log",
        summary="Add a message to the history (the body); the heartbeat's state and lateness "
        "stay as they are",
    )
)
class PingLogView(PingView):
    kind = PingKind.LOG


class PingExitCodeView(PingView):
    @extend_schema(
        operation_id="heartbeat_ping_exit_code",
        summary="A job ended with this exit code (0: success, anything else: failure)",
        request={"text/plain": str},
        responses={
            200: OpenApiResponse(description="OK"),
            400: OpenApiResponse(description="the exit code is not 0-255"),
            404: OpenApiResponse(description="no such heartbeat"),
        },
    )
    def post(self, request: Request, key: uuid.UUID, exit_code: int | None = None) -> HttpResponse:
        if exit_code is not None and exit_code > heartbeats.MAX_EXIT_CODE:
            # A process exit status is one byte; anything larger is a mistake in the caller's
            # script (a PID, a duration), better told than stored as a failure.
            raise exceptions.ValidationError(
                {"exit_code": [f"must be 0-{heartbeats.MAX_EXIT_CODE}, got {exit_code}"]}
            )
        return super().post(request, key, exit_code)
