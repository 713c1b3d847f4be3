"""Catalog API: teams, memberships, environments, dependencies, services, instances, tokens."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, filters, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from catalog import invitations, members, signals, tokens
from catalog.api import filters as catalog_filters
from catalog.api import serializers as s
from catalog.api.base import (
    ADMIN_WRITES,
    ID_LOOKUP,
    SLUG_LOOKUP,
    ScopedViewSet,
    service_in_body,
    team_in_body,
)
from catalog.choices import (
    ENVIRONMENT_EVENTS,
    EXTERNAL_DEPENDENCY_EVENTS,
    INSTANCE_EVENTS,
    MEMBERSHIP_EVENTS,
    SERVICE_EVENTS,
    TEAM_EVENTS,
    Lifecycle,
    Scope,
)
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
from catalog.permissions import ADMIN, Access
from controlplane import changes
from controlplane.api import KnownQueryParameters
from controlplane.viewsets import actor_of


@extend_schema_view(
    list=extend_schema(summary="List teams"),
    retrieve=extend_schema(summary="Show a team"),
    create=extend_schema(summary="Create a team"),
    partial_update=extend_schema(summary="Change a team's name, description or Slack channel"),
    destroy=extend_schema(summary="Delete a team that owns no services"),
)
class TeamViewSet(ScopedViewSet):
    """Teams own services. Platform admins create and delete teams; owners edit theirs."""

    queryset = Team.objects.all()
    serializer_class = s.TeamSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_LOOKUP
    scopes = {"GET": Scope.READ, "POST": ADMIN, "PATCH": Scope.WRITE, "DELETE": ADMIN}
    filter_backends = [KnownQueryParameters, filters.SearchFilter]
    search_fields = ["slug", "name"]
    events = TEAM_EVENTS


@extend_schema_view(
    list=extend_schema(summary="List memberships"),
    retrieve=extend_schema(summary="Show a membership"),
    create=extend_schema(summary="Add a person to a team with a role"),
    partial_update=extend_schema(summary="Change a member's role"),
    destroy=extend_schema(summary="Remove a person from a team"),
)
class MembershipViewSet(ScopedViewSet):
    """Who is in which team, as viewer, deployer or owner. Team owners manage their team's
    members; a team always keeps at least one owner (removing the last one answers 409)."""

    queryset = Membership.objects.select_related("team", "user")
    serializer_class = s.MembershipSerializer
    lookup_value_regex = ID_LOOKUP
    filterset_class = catalog_filters.MembershipFilter
    events = MEMBERSHIP_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return team_in_body(request)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        members.change_role(serializer, actor=actor_of(self.request))

    def perform_destroy(self, instance: Model) -> None:
        assert isinstance(instance, Membership)
        members.remove(instance, actor=actor_of(self.request))


@extend_schema_view(
    list=extend_schema(summary="List environments, in deploy order"),
    retrieve=extend_schema(summary="Show an environment"),
    create=extend_schema(summary="Create an environment"),
    partial_update=extend_schema(summary="Change an environment"),
    destroy=extend_schema(summary="Delete an environment without instances"),
)
class EnvironmentViewSet(ScopedViewSet):
    """Where services run (staging, production, ...). Platform admins change them."""

    queryset = Environment.objects.all()
    serializer_class = s.EnvironmentSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_LOOKUP
    scopes = ADMIN_WRITES
    filterset_class = catalog_filters.EnvironmentFilter
    events = ENVIRONMENT_EVENTS


@extend_schema_view(
    list=extend_schema(summary="List external dependencies"),
    retrieve=extend_schema(summary="Show an external dependency"),
    create=extend_schema(summary="Declare an external dependency"),
    partial_update=extend_schema(summary="Change an external dependency"),
    destroy=extend_schema(summary="Delete an external dependency"),
)
class ExternalDependencyViewSet(ScopedViewSet):
    """Things services rely on but nobody here runs (a payment provider, S3). Admins change them."""

    # vendor_status is health's row, protected_by_circuits the circuits': named, not imported.
    queryset = ExternalDependency.objects.select_related("vendor_status").prefetch_related(
        "protected_by_circuits"
    )
    serializer_class = s.ExternalDependencySerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_LOOKUP
    scopes = ADMIN_WRITES
    filter_backends = [KnownQueryParameters, filters.SearchFilter]
    search_fields = ["slug", "name"]
    events = EXTERNAL_DEPENDENCY_EVENTS


@extend_schema_view(
    list=extend_schema(summary="List services (filter, search, order)"),
    retrieve=extend_schema(summary="Show a service"),
    create=extend_schema(summary="Create a service owned by a team"),
    partial_update=extend_schema(
        summary="Change a service (moving it needs ownership of both teams)"
    ),
    destroy=extend_schema(summary="Delete a service and its instances"),
)
class ServiceViewSet(ScopedViewSet):
    """Deployable units, each owned by one team, with declared dependencies."""

    queryset = Service.objects.select_related("team").prefetch_related(
        "depends_on", "external_dependencies"
    )
    serializer_class = s.ServiceSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_LOOKUP
    filter_backends = [
        KnownQueryParameters,
        DjangoFilterBackend,
        filters.SearchFilter,
        filters.OrderingFilter,
    ]
    filterset_class = catalog_filters.ServiceFilter
    search_fields = ["slug", "name", "description"]
    ordering_fields = ["slug", "name", "tier", "created_at"]
    events = SERVICE_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return team_in_body(request)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        access = Access.of(self.request)
        new_team = serializer.validated_data.get("team")
        if new_team is not None and not access.can(Scope.WRITE, new_team):
            raise exceptions.PermissionDenied(
                "moving a service needs 'write' on the new team too: "
                + access.why_not(Scope.WRITE, new_team)
            )
        super().perform_update(serializer)


@extend_schema_view(
    list=extend_schema(summary="List instances"),
    retrieve=extend_schema(summary="Show an instance"),
    create=extend_schema(summary="Add an instance by hand"),
    partial_update=extend_schema(
        summary="Change an instance's version, zone, labels, lifecycle or heartbeat"
    ),
    destroy=extend_schema(summary="Delete an instance (self-registered ones should deregister)"),
)
class InstanceViewSet(ScopedViewSet):
    """Running copies of services. Owners edit them; instances register themselves with a
    `report` token (see register and deregister)."""

    queryset = Instance.objects.select_related("service", "service__team", "environment")
    serializer_class = s.InstanceSerializer
    lookup_value_regex = ID_LOOKUP
    filter_backends = [KnownQueryParameters, DjangoFilterBackend, filters.OrderingFilter]
    filterset_class = catalog_filters.InstanceFilter
    ordering_fields = ["last_seen_at", "registered_at", "version", "host", "port"]
    events = INSTANCE_EVENTS

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return service_in_body(request)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "register":
            return s.RegistrationSerializer
        if self.action == "deregister":
            return s.InstanceAddressSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        with transaction.atomic():
            super().perform_create(serializer)
            signals.send_on_commit(signals.instance_registered, serializer.instance)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        instance = serializer.instance
        assert isinstance(instance, Instance)
        data: dict[str, Any] = serializer.validated_data
        deregistering = (
            data.get("lifecycle") == Lifecycle.DEREGISTERED
            and instance.lifecycle != Lifecycle.DEREGISTERED
        )
        if not deregistering:
            super().perform_update(serializer)
            return
        # Deregistering is one fact however it arrives: the same event and signal as
        # POST /instances/deregister, after any other fields of this PATCH are saved.
        data.pop("lifecycle")
        with transaction.atomic():
            super().perform_update(serializer)
            instance.deregister(actor=Access.of(self.request))

    @extend_schema(
        summary="Register (or re-register) the calling instance",
        description="Idempotent on (service, environment, host, port): the first call creates "
        "the instance (201), later calls refresh its version, zone, labels, heartbeat and "
        "last-seen time (200). Fields left out keep their values. A stale or deregistered "
        "instance comes back as registered. Needs `report` on the service's team.",
        request=s.RegistrationSerializer,
        responses={
            200: OpenApiResponse(s.InstanceSerializer, description="Known instance refreshed."),
            201: OpenApiResponse(s.InstanceSerializer, description="New instance registered."),
        },
    )
    @action(detail=False, methods=["post"], scopes={"POST": Scope.REPORT})
    def register(self, request: Request) -> Response:
        serializer = s.RegistrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        instance, created = Instance.register(
            service=data["service"],
            environment=data["environment"],
            host=data["host"],
            port=data["port"],
            reported=serializer.reported(),
            actor=Access.of(request),
        )
        answer = s.InstanceSerializer(instance).data
        return Response(answer, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        summary="Deregister the calling instance",
        description="Marks the instance at (service, environment, host, port) deregistered. "
        "Idempotent; 404 when no instance was ever registered there.",
        request=s.InstanceAddressSerializer,
        responses={200: s.InstanceSerializer},
    )
    @action(detail=False, methods=["post"], scopes={"POST": Scope.REPORT})
    def deregister(self, request: Request) -> Response:
        serializer = s.InstanceAddressSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = dict(serializer.validated_data)
        with transaction.atomic():
            instance = self.get_queryset().select_for_update(of=("self",)).filter(**key).first()
            if instance is None:
                raise exceptions.NotFound(
                    f"{key['service']} has no instance at {key['host']}:{key['port']} "
                    f"in {key['environment']}"
                )
            instance.deregister(actor=Access.of(request))
        return Response(s.InstanceSerializer(instance).data)


@extend_schema_view(
    list=extend_schema(summary="List the tokens of teams you own"),
    retrieve=extend_schema(summary="Show a token (never its value)"),
    create=extend_schema(
        summary="Issue a token; its value is in this answer only",
        request=s.TokenIssueSerializer,
        responses={201: s.IssuedTokenSerializer},
    ),
    destroy=extend_schema(summary="Revoke a token (the row stays, with revoked_at)"),
)
class TokenViewSet(ScopedViewSet):
    """Team API tokens. Team owners (people, not tokens) list, issue and revoke their team's
    tokens; platform admins see all. Only a hash is stored: the value is shown once."""

    serializer_class = s.TokenSerializer
    lookup_value_regex = ID_LOOKUP
    filterset_class = catalog_filters.TokenFilter
    http_method_names = ["get", "post", "delete", "head", "options"]
    people_only = True

    def get_queryset(self) -> QuerySet[ApiToken]:
        tokens = ApiToken.objects.select_related("team", "service", "created_by")
        if getattr(self, "swagger_fake_view", False):
            return tokens.none()  # the schema generator has no caller
        access = Access.of(self.request)
        if access.is_admin:
            return tokens
        return tokens.filter(team__in=[t.pk for t in access.teams_with(Scope.WRITE)])

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return team_in_body(request)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.TokenIssueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, plain = tokens.issue(serializer, actor=Access.of(request), created_by=request.user)
        answer = s.IssuedTokenSerializer(token, context={"plain": plain}).data
        return Response(answer, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Model) -> None:
        assert isinstance(instance, ApiToken)
        self._revoke(instance)

    @extend_schema(
        summary="Revoke a token (same as DELETE, answers the token)",
        request=None,
        responses={200: s.TokenSerializer},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = self.get_object()
        self._revoke(token)
        return Response(s.TokenSerializer(token).data)

    def _revoke(self, token: ApiToken) -> None:
        tokens.revoke(token, actor=Access.of(self.request))


class MailNotSent(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "mail_not_sent"


@extend_schema_view(
    list=extend_schema(summary="List invitations (owners of the team; platform admins: all)"),
    retrieve=extend_schema(summary="Show an invitation"),
    create=extend_schema(
        summary="Invite an email address into a team with a role; the link goes by email",
        request=s.InvitationCreateSerializer,
        responses={
            201: s.InvitationSerializer,
            400: OpenApiResponse(
                description="a bad field, a member already, or a pending invitation already"
            ),
            502: OpenApiResponse(description="the mail server refused it: nothing was saved"),
        },
    ),
    destroy=extend_schema(
        summary="Revoke an invitation: its link stops working (the row stays, cancelled)",
        responses={
            204: OpenApiResponse(description="revoked (or it was already)"),
            409: OpenApiResponse(description="accepted already: remove the membership instead"),
        },
    ),
)
class InvitationViewSet(ScopedViewSet):
    """Invitations to join a team by email, as the team page makes them: the team's owners
    (or a `write` token of the team) list, send and revoke them; each change one event."""

    serializer_class = s.InvitationSerializer
    lookup_value_regex = ID_LOOKUP
    filterset_class = catalog_filters.InvitationFilter
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Invitation]:
        rows = Invitation.objects.select_related("team", "invited_by")
        if getattr(self, "swagger_fake_view", False):
            return rows.none()  # the schema generator has no caller
        access = Access.of(self.request)
        if access.is_admin:
            return rows
        # The addresses are the team's business: only those who may invite see them.
        return rows.filter(team__in=[t.pk for t in access.teams_with(Scope.WRITE)])

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        return team_in_body(request)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        asked = s.InvitationCreateSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        data = asked.validated_data
        try:
            invitation = invitations.invite(
                data["team"], data["email"], data["role"],
                actor=Access.of(request), invited_by=request.user,
            )  # fmt: skip
        except OSError as error:
            raise MailNotSent(
                f"the invitation email could not be sent ({error}); nothing was saved: "
                "check the email settings (docs/configuration.md) and try again"
            ) from error
        answer = s.InvitationSerializer(invitation).data
        return Response(answer, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Model) -> None:
        assert isinstance(instance, Invitation)
        if instance.accepted_at is not None:
            raise changes.Conflict(
                f"{instance.email} accepted this invitation already; "
                "remove their membership instead"
            )
        invitations.cancel(instance, actor=Access.of(self.request))
