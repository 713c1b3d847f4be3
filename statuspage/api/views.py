"""Status pages, public incidents and badges under /api/v1/status/ (docs/status-page.md).

Writes are checked on the owning team like every other resource: a page's team, an
incident's page's team, a badge's service's team."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.base import SLUG_LOOKUP, ScopedViewSet, body_value, service_in_body, team_in_body
from catalog.choices import Scope
from catalog.models import Service, Team
from catalog.permissions import Access
from controlplane.events import publish
from controlplane.viewsets import actor_of
from statuspage.api import serializers as s
from statuspage.choices import (
    BADGE_EVENTS,
    PUBLIC_INCIDENT_EVENTS,
    STATUS_PAGE_EVENTS,
    BadgeEvent,
)
from statuspage.models import Badge, PublicIncident, StatusPage


@extend_schema_view(
    list=extend_schema(summary="Status pages"),
    create=extend_schema(summary="Create a status page (unpublished until `published`)"),
    retrieve=extend_schema(summary="Show a status page"),
    partial_update=extend_schema(summary="Change a status page; `services` replaces the list"),
    destroy=extend_schema(summary="Delete a status page"),
)
class StatusPageViewSet(ScopedViewSet):
    serializer_class = s.StatusPageSerializer
    queryset = StatusPage.objects.select_related("team", "environment").prefetch_related(
        "entries__service"
    )
    lookup_field = "slug"
    lookup_value_regex = SLUG_LOOKUP
    filterset_fields = {"team__slug": ["exact"], "published": ["exact"]}
    events = STATUS_PAGE_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return team_in_body(request)

    def conflict_message(self, serializer: Any) -> str:
        return "a status page with this slug already exists"

    def perform_update(self, serializer: Any) -> None:
        # Handing a page to another team needs the right to write there too.
        team = serializer.validated_data.get("team")
        if team is not None and team != serializer.instance.team:
            access = Access.of(self.request)
            if not access.can(Scope.WRITE, team):
                raise PermissionDenied(access.why_not(Scope.WRITE, team))
        super().perform_update(serializer)


def _page_team(request: Request) -> tuple[Team | None, Service | None]:
    slug = body_value(request, "page")
    page = StatusPage.objects.select_related("team").filter(slug=slug).first() if slug else None
    return (page.team if page else None), None


@extend_schema_view(
    list=extend_schema(summary="Incidents published on status pages"),
    create=extend_schema(summary="Publish an incident on a page (its own public text)"),
    retrieve=extend_schema(summary="Show a published incident"),
    partial_update=extend_schema(summary="Update a published incident (status, message)"),
    destroy=extend_schema(summary="Withdraw a published incident"),
)
class PublicIncidentViewSet(ScopedViewSet):
    serializer_class = s.PublicIncidentSerializer
    queryset = PublicIncident.objects.select_related("page", "page__team").prefetch_related(
        "entries__service"
    )
    filterset_fields = {"page__slug": ["exact"], "status": ["exact"]}
    events = PUBLIC_INCIDENT_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return _page_team(request)


@extend_schema_view(
    list=extend_schema(summary="Badges (the URL shown to those who may change the badge)"),
    create=extend_schema(summary="Create a badge of a service's state or uptime"),
    retrieve=extend_schema(summary="Show a badge"),
    partial_update=extend_schema(summary="Change a badge (label, kind, enabled)"),
    destroy=extend_schema(summary="Delete a badge (its URL answers 404)"),
)
class BadgeViewSet(ScopedViewSet):
    serializer_class = s.BadgeSerializer
    queryset = Badge.objects.select_related("service", "service__team", "environment")
    filterset_fields = {"service__slug": ["exact"]}
    events = BADGE_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return service_in_body(request)

    def _revealed(self, badge: Badge, status: int = 200) -> Response:
        context = {**self.get_serializer_context(), "reveal_url": True}
        return Response(s.BadgeSerializer(badge, context=context).data, status=status)

    def get_serializer_context(self) -> dict[str, Any]:
        # Each team's right to write is asked once per response, not once per badge.
        context = {**super().get_serializer_context(), "writable_teams": {}}
        if self.request is not None and self.request.method == "GET":
            context["reveal_url"] = True
        return context

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().create(request, *args, **kwargs)
        badge = Badge.objects.select_related("service__team").get(pk=response.data["id"])
        return self._revealed(badge, status=response.status_code)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        super().partial_update(request, *args, **kwargs)
        return self._revealed(self.get_object())

    @extend_schema(
        request=None,
        responses=s.BadgeSerializer,
        summary="A new URL for the badge; the old one answers 404",
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        badge = self.get_object()
        from django.db import transaction

        with transaction.atomic():
            badge.rotate()
            publish(
                BadgeEvent.ROTATED,
                actor=actor_of(request),
                subject=badge,
                service=badge.service,
                environment=badge.environment,
                message=f"badge {badge.pk} of {badge.service.slug} got a new URL",
                payload={"badge": badge.pk, "kind": badge.kind},
            )
        return self._revealed(badge)
