"""Rollout endpoints (start idempotently, list, show, act) and freeze windows (one-off, weekly)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.base import ADMIN_WRITES, ID_LOOKUP, ScopedViewSet, service_in_body
from catalog.choices import Scope
from catalog.models import Environment, Service, Team
from catalog.permissions import Access, ScopeRule
from deployments import actions
from deployments.api.filters import FreezeFilter, RolloutFilter
from deployments.api.serializers import (
    ActionSerializer,
    FreezeWindowSerializer,
    RecurringFreezeWindowSerializer,
    RolloutCreateSerializer,
    RolloutDetailSerializer,
    RolloutSerializer,
)
from deployments.choices import (
    FREEZE_WINDOW_EVENTS,
    RECURRING_FREEZE_WINDOW_EVENTS,
    Action,
)
from deployments.models import AnalysisRun, FreezeWindow, RecurringFreezeWindow, Rollout

ERRORS = {
    400: OpenApiResponse(description="Bad input: `error.fields` names each field and why."),
    401: OpenApiResponse(description="No or bad credentials."),
    403: OpenApiResponse(description="Not allowed: needs the deploy scope on the service's team."),
    404: OpenApiResponse(description="No such rollout."),
    409: OpenApiResponse(description="The rollout's state refuses this, or another is active."),
}


class RolloutRefused(exceptions.APIException):
    """An actions.RolloutError in the API's one error shape."""

    def __init__(self, error: actions.RolloutError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.status
        self.default_code = error.code


def _raise(error: actions.RolloutError) -> None:
    if error.status == 400:
        raise exceptions.ValidationError(error.fields or {"non_field_errors": [error.message]})
    raise RolloutRefused(error)


class RolloutList(generics.ListCreateAPIView[Any]):
    """Rollouts of every team, newest first; start one with the deploy scope."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ, "POST": Scope.DEPLOY}
    serializer_class = RolloutSerializer
    filterset_class = RolloutFilter

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return service_in_body(request)

    def get_queryset(self) -> QuerySet[Rollout]:
        return Rollout.objects.select_related("team", "service", "environment")

    @extend_schema(
        summary="List rollouts",
        description="Filters: service, environment, team, state, active=true.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Start a rollout",
        request=RolloutCreateSerializer,
        responses={
            201: RolloutSerializer,
            200: OpenApiResponse(
                RolloutSerializer,
                description="Same idempotency_key: the rollout it started before.",
            ),
            **ERRORS,
            423: OpenApiResponse(description="The environment is in a freeze window."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = RolloutCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service = Service.objects.select_related("team").filter(slug=data["service"]).first()
        if service is None:
            raise exceptions.ValidationError({"service": [f"no service {data['service']!r}"]})
        environment = Environment.objects.filter(slug=data["environment"]).first()
        if environment is None:
            raise exceptions.ValidationError(
                {"environment": [f"no environment {data['environment']!r}"]}
            )
        try:
            rollout, created = actions.start_rollout(
                access=Access.of(request),
                service=service,
                environment=environment,
                version=data["version"],
                strategy=data.get("strategy"),
                steps=data.get("steps"),
                analysis=data.get("analysis"),
                idempotency_key=data.get("idempotency_key", ""),
                reason=data.get("reason", ""),
                freeze_override_reason=data.get("freeze_override_reason", ""),
            )
        except actions.RolloutError as error:
            _raise(error)
            raise
        body = RolloutSerializer(rollout, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RolloutDetail(generics.RetrieveAPIView[Rollout]):
    """One rollout with its steps, analysis runs and measurements."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ}
    serializer_class = RolloutDetailSerializer
    queryset = Rollout.objects.select_related("team", "service", "environment").prefetch_related(
        "step_runs", Prefetch("analysis_runs", AnalysisRun.objects.prefetch_related("measurements"))
    )

    @extend_schema(summary="Show a rollout", responses={200: RolloutDetailSerializer, **ERRORS})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class RolloutActionView(generics.GenericAPIView[Rollout]):
    """pause, resume, promote (`full`: all the way), abort (rolls back), retry, rollback
    (after success: starts a rollout back to the previous version and answers it, 201)."""

    permission_classes = [ScopeRule]
    scopes = {"POST": Scope.DEPLOY}
    serializer_class = ActionSerializer
    queryset = Rollout.objects.select_related("team", "service", "environment")
    action_name = ""

    @extend_schema(
        request=ActionSerializer,
        responses={200: RolloutSerializer, 201: RolloutSerializer, **ERRORS},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rollout = self.get_object()  # 404, then the deploy check on its team
        serializer = ActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("full") and self.action_name != Action.PROMOTE:
            raise exceptions.ValidationError({"full": ["only promote takes `full`"]})
        try:
            result = actions.act(
                rollout.pk,
                self.action_name,
                access=Access.of(request),
                reason=data.get("reason", ""),
                full=data.get("full", False),
            )
        except actions.RolloutError as error:
            _raise(error)
            raise
        created = result.pk != rollout.pk
        body = RolloutSerializer(result, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def action_view(action: Action) -> Any:
    summary = {
        Action.PAUSE: "Pause a rollout",
        Action.RESUME: "Resume a paused rollout (or continue past a wait for promotion)",
        Action.PROMOTE: "Promote a rollout to its next step, or all the way (full)",
        Action.ABORT: "Abort a rollout: all traffic back on stable",
        Action.RETRY: "Retry a step with no data or a router error, or restart a failed rollout",
        Action.ROLLBACK: "Roll back: during a rollout, or after success to the previous version",
    }[action]
    view: type[RolloutActionView] = type(
        f"Rollout{action.value.title()}View",
        (RolloutActionView,),
        {"action_name": action.value, "__doc__": summary},
    )
    decorated = extend_schema(summary=summary, operation_id=f"rollouts_{action.value}")(view)
    return decorated.as_view()


class FreezeViewSet(ScopedViewSet):
    """Freeze windows are platform-wide, like environments: everyone reads, admins change."""

    scopes = ADMIN_WRITES
    lookup_value_regex = ID_LOOKUP
    filterset_class = FreezeFilter
    model: type[FreezeWindow] | type[RecurringFreezeWindow]

    def get_queryset(self) -> QuerySet[Any]:
        return self.model.objects.select_related("environment", "created_by")


@extend_schema_view(
    list=extend_schema(summary="List one-off freeze windows", description="Filter: environment."),
    retrieve=extend_schema(summary="Show a one-off freeze window"),
    create=extend_schema(summary="Freeze an environment from starts_at to ends_at"),
    partial_update=extend_schema(summary="Change a one-off freeze window"),
    destroy=extend_schema(summary="Delete a one-off freeze window"),
)
class FreezeWindowViewSet(FreezeViewSet):
    """One-off freezes: new rollouts in the environment answer 423 from start to end."""

    model = FreezeWindow
    queryset = FreezeWindow.objects.all()
    serializer_class = FreezeWindowSerializer
    events = FREEZE_WINDOW_EVENTS


@extend_schema_view(
    list=extend_schema(summary="List recurring freeze windows", description="Filter: environment."),
    retrieve=extend_schema(summary="Show a recurring freeze window"),
    create=extend_schema(summary="Freeze an environment every week (days, local time, zone)"),
    partial_update=extend_schema(summary="Change a recurring freeze window"),
    destroy=extend_schema(summary="Delete a recurring freeze window"),
)
class RecurringFreezeWindowViewSet(FreezeViewSet):
    """Weekly freezes in a local time zone: new rollouts answer 423 during each occurrence."""

    model = RecurringFreezeWindow
    queryset = RecurringFreezeWindow.objects.all()
    serializer_class = RecurringFreezeWindowSerializer
    events = RECURRING_FREEZE_WINDOW_EVENTS
