"""Circuits API: reports, circuits and their history, overrides, scrape targets, dependencies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api.base import ID_LOOKUP, ScopedViewSet, service_in_body
from catalog.choices import Scope
from catalog.models import Environment, Service, Team
from catalog.permissions import Access, ScopeRule
from circuits import history, overrides
from circuits.api import serializers as s
from circuits.api.filters import CircuitFilter, ScrapeTargetFilter
from circuits.choices import SCRAPE_TARGET_EVENTS, CircuitEvent, Source
from circuits.ingest.reports import BatchError, parse_batch
from circuits.ingest.store import UnknownNames, resolve, store
from circuits.models import Circuit, CircuitOverride, ScrapeTarget
from circuits.services import CIRCUIT, DECLARED, current_state, dependency_edges
from controlplane.api import refuse_unknown_parameters
from controlplane.events import publish

READ_ONLY = {"GET": Scope.READ}


def _one_of(request: Request, name: str, model: Any) -> Any:
    """The catalog object a query parameter names by slug, None if absent, 400 if unknown."""
    slug = request.query_params.get(name)
    if not slug:
        return None
    found = model.objects.filter(slug=slug).first()
    if found is None:
        raise exceptions.ValidationError({name: [f"no {name} {slug!r}"]})
    return found


class ReportView(APIView):
    """Report circuit states in batches (up to 5,000 per request).

    Top-level `service`, `environment` and `instance` apply to every report that omits
    them. Each report: `circuit`, `state`, `reported_at` (ISO 8601 with zone, or epoch
    seconds), and optionally `failure_rate`, `slow_call_rate` (percent; -1 or null when
    unknown), `calls`, `failed_calls`, `slow_calls`, `rejected_calls`, `latency_p50_ms`,
    `latency_p99_ms`, `thresholds` (named numbers), `protects` (`<service>` or
    `external:<slug>`). Idempotent: a report not newer than the stored one for its
    instance and circuit is ignored, as is one older than the stale time.
    """

    permission_classes = [ScopeRule]
    scopes = {"POST": Scope.REPORT}

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        # A batch may span services; each is checked below once the batch is parsed.
        return None, None

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={202: OpenApiResponse(OpenApiTypes.OBJECT, description="counts")},
    )
    def post(self, request: Request) -> Response:
        try:
            reports = parse_batch(
                request.data,
                now=timezone.now(),
                max_skew=timedelta(seconds=settings.SIGNALBOX_CIRCUITS_MAX_CLOCK_SKEW),
            )
            resolved = resolve(reports)
        except (BatchError, UnknownNames) as exc:
            raise exceptions.ValidationError(exc.errors) from None
        access = Access.of(request)
        for service in resolved.services.values():
            if not access.can(Scope.REPORT, service.team, service):
                raise exceptions.PermissionDenied(
                    access.why_not(Scope.REPORT, service.team, service)
                )
        result = store(reports, resolved, source=Source.PUSH, actor=access)
        return Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)


class CircuitViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Any],
):
    """Circuits with their aggregate across instances, worst first.

    Filters: `team`, `service`, `environment` (slugs), `state`, `protects` (a service
    slug or `external:<slug>`). PATCH changes only `protects`.
    """

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ, "PATCH": Scope.WRITE}
    http_method_names = ["get", "patch", "head", "options"]
    lookup_value_regex = r"[0-9]+"
    filterset_class = CircuitFilter
    # DRF lets an @action set only attributes its class has: `history` sets its own.
    query_parameters: tuple[str, ...] = ()

    def get_queryset(self) -> QuerySet[Circuit]:
        queryset = Circuit.objects.select_related(
            "service", "service__team", "environment", "protects_service", "protects_external"
        ).order_by("-severity", "service__slug", "environment__order", "name")
        if self.action == "retrieve":
            return queryset.prefetch_related("instance_states")
        return queryset

    def get_serializer_class(self) -> type[s.CircuitSerializer]:
        return s.CircuitDetailSerializer if self.action == "retrieve" else s.CircuitSerializer

    def perform_update(self, serializer: Any) -> None:
        circuit = serializer.save()
        publish(
            CircuitEvent.UPDATED,
            actor=Access.of(self.request),
            subject=circuit,
            message=f"{circuit.name} now protects {circuit.target_label or 'an unknown target'}",
            payload={"protects": circuit.target_label},
        )

    @extend_schema(
        parameters=[OpenApiParameter("hours", int, description="1 to the retention; default 24")],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT)},
    )
    @action(detail=True, methods=["get"], query_parameters=("hours",))
    def history(self, request: Request, pk: str) -> Response:
        """Per-minute samples (columns for charts) and the latest transitions."""
        circuit = self.get_object()
        try:
            hours = int(request.query_params.get("hours", "24"))
        except ValueError:
            raise exceptions.ValidationError({"hours": ["a whole number of hours"]}) from None
        retention_hours = 24 * settings.SIGNALBOX_CIRCUITS_HISTORY_DAYS
        if not 1 <= hours <= retention_hours:
            raise exceptions.ValidationError(
                {"hours": [f"between 1 and {retention_hours} (the retention)"]}
            )
        transitions = circuit.transitions.all()[:200]
        return Response(
            {
                "circuit": circuit.pk,
                "state": current_state(circuit),
                "samples": history.chart_series(circuit, hours=hours),
                "transitions": [
                    {
                        "at": t.at,
                        "instance": t.instance_key or None,
                        "from": t.from_state or None,
                        "to": t.to_state,
                        "failure_rate": t.failure_rate,
                    }
                    for t in transitions
                ],
            }
        )


class ReadOrReport(BasePermission):
    """Reading overrides: people, `read` tokens, and `report` tokens (for their own team)."""

    message = "reading overrides needs a signed-in person, a `read` token, or a `report` token"

    def has_permission(self, request: Request, view: Any) -> bool:
        access = Access.of(request)
        if access.token is None:
            return bool(access.user.is_authenticated)
        return access.token.has_scope(Scope.READ) or access.token.has_scope(Scope.REPORT)


class OverrideViewSet(
    mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[CircuitOverride]
):
    """Standing overrides of a service's circuits; services poll this with If-None-Match.

    GET needs `service` (slug), optionally `environment`: the overrides that apply there
    (those for that environment and those for every environment). The answer carries an
    ETag; send it back in If-None-Match and, if nothing changed, get 304 with no body.
    """

    # GET swaps in ReadOrReport (get_permissions); writes go through ScopeRule.
    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ, "POST": Scope.DEPLOY, "DELETE": Scope.DEPLOY}
    serializer_class = s.OverrideSerializer
    queryset = CircuitOverride.objects.select_related("service", "service__team", "environment")
    team_for_create = staticmethod(service_in_body)
    pagination_class = None
    lookup_value_regex = r"[0-9]+"
    query_parameters = ("service", "environment")

    def get_permissions(self) -> Sequence[Any]:
        if self.request.method == "GET":
            return [ReadOrReport()]
        return super().get_permissions()

    @extend_schema(
        parameters=[
            OpenApiParameter("service", str, required=True),
            OpenApiParameter("environment", str),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT), 304: None},
    )
    def list(self, request: Request) -> Response:
        refuse_unknown_parameters(request, self)
        service = _one_of(request, "service", Service)
        if service is None:
            raise exceptions.ValidationError(
                {"service": ["required: the service whose overrides to read"]}
            )
        environment = _one_of(request, "environment", Environment)
        access = Access.of(request)
        reporter_only = access.token is not None and not access.token.has_scope(Scope.READ)
        if reporter_only and not access.can(Scope.REPORT, service.team, service):
            raise exceptions.PermissionDenied(access.why_not(Scope.REPORT, service.team, service))
        documents = [overrides.as_document(o) for o in overrides.standing(service, environment)]
        tag = overrides.etag(documents)
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if tag in _etags(request.headers.get("If-None-Match", "")):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        body = {
            "service": service.slug,
            "environment": environment.slug if environment else None,
            "overrides": documents,
        }
        return Response(body, headers=headers)

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = overrides.set_override(
            service=data["service"],
            circuit_name=data["circuit_name"],
            environment=data.get("environment"),
            state=data["state"],
            reason=data["reason"],
            expires_at=data["expires_at"],
            actor=Access.of(self.request),
        )

    def perform_destroy(self, instance: CircuitOverride) -> None:
        overrides.clear_override(
            instance, actor=Access.of(self.request), why="lifted through the API"
        )

    def get_queryset(self) -> QuerySet[CircuitOverride]:
        return self.queryset.filter(cleared_at__isnull=True)


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


class ScrapeTargetViewSet(ScopedViewSet):
    """URLs the workers scrape for circuit states (Prometheus exposition or a Hystrix stream).

    Targets with origin `labels` follow their instance's labels (`circuits.prometheus_path`,
    `circuits.hystrix_path`) and are managed by the catalog; add `manual` ones here.
    Filters: `service`, `environment`, `kind`.
    """

    serializer_class = s.ScrapeTargetSerializer
    lookup_value_regex = ID_LOOKUP
    team_for_create = staticmethod(service_in_body)
    filterset_class = ScrapeTargetFilter
    events = SCRAPE_TARGET_EVENTS

    def get_queryset(self) -> QuerySet[ScrapeTarget]:
        return ScrapeTarget.objects.select_related(
            "service", "service__team", "environment"
        ).order_by("service__slug", "kind", "url")


class DependencyView(APIView):
    """Caller -> callee edges: declared in the catalog, seen through circuits, or both.

    Each edge lists its sources and the circuits on it with their current state, for the
    dependency map and the dependents analysis of rollouts. Filters: `service` (edges
    from or to it), `environment` (which circuits are listed).
    """

    permission_classes = [ScopeRule]
    scopes = READ_ONLY
    query_parameters = ("service", "environment")

    @extend_schema(
        parameters=[OpenApiParameter("service", str), OpenApiParameter("environment", str)],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT)},
    )
    def get(self, request: Request) -> Response:
        refuse_unknown_parameters(request, self)
        service = _one_of(request, "service", Service)
        environment = _one_of(request, "environment", Environment)
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for caller, callee, source in dependency_edges():
            if service is not None and service.slug not in (caller, callee):
                continue
            edge = merged.setdefault(
                (caller, callee),
                {
                    "caller": caller,
                    "callee": callee.removeprefix("external:"),
                    "callee_kind": "external" if callee.startswith("external:") else "service",
                    "sources": [],
                    "circuits": [],
                },
            )
            edge["sources"].append(source)
        circuits = Circuit.objects.select_related(
            "service", "environment", "protects_service", "protects_external"
        ).exclude(protects_service__isnull=True, protects_external__isnull=True)
        if environment is not None:
            circuits = circuits.filter(environment=environment)
        now = timezone.now()
        for circuit in circuits.order_by("service__slug", "name", "environment__order"):
            key = (circuit.service.slug, circuit.target_label)
            if key in merged:
                merged[key]["circuits"].append(
                    {
                        "id": circuit.pk,
                        "name": circuit.name,
                        "environment": circuit.environment.slug,
                        "state": current_state(circuit, now),
                        "open_instances": circuit.open_instances,
                        "total_instances": circuit.total_instances,
                        "failure_rate": circuit.failure_rate,
                    }
                )
        for edge in merged.values():
            edge["sources"] = sorted(set(edge["sources"]), key=[DECLARED, CIRCUIT].index)
        return Response({"edges": list(merged.values())})
