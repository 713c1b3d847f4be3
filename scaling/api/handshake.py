"""The scale-in handshake, as instances speak it (docs/scaling.md, The handshake):

- `GET /api/v1/instances/<id>/lifecycle`: keep serving, or drain and say when done; cheap to
  poll (an ETag, and 304 when nothing changed);
- `POST /api/v1/instances/<id>/ready-to-terminate`: done, stop me now;
- `POST /api/v1/instances/<id>/lifecycle-heartbeat`: still finishing, keep waiting;
- `POST|DELETE /api/v1/instances/<id>/protection`: don't choose me for scale-in for N minutes
  (ECS task protection), or do again.

An instance answers with its team's `report` token, or with the lifecycle token its drain
notice carried (it answers for that instance's termination only, like AWS's
LifecycleActionToken)."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import authentication, exceptions, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.auth import TokenAuthentication
from catalog.choices import Scope
from catalog.models import Instance
from catalog.permissions import Access, ScopeRule
from controlplane.events import publish
from scaling import lifecycle
from scaling.choices import ScalingEvent, TerminationState
from scaling.drivers import driver_of
from scaling.drivers.base import ScalingDriverError
from scaling.models import (
    PROTECTION_DEFAULT_MINUTES,
    PROTECTION_MAX_MINUTES,
    Protection,
    ScalingGroup,
    Termination,
)

logger = logging.getLogger(__name__)

# ECS task scale-in protection's default and maximum (48 hours).
DEFAULT_PROTECTION_MINUTES, MAX_PROTECTION_MINUTES = (
    PROTECTION_DEFAULT_MINUTES,
    PROTECTION_MAX_MINUTES,
)


@dataclass(frozen=True)
class LifecycleGrant:
    """A lifecycle token's authority: one open termination of one instance."""

    termination: Termination


class LifecycleTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer sbxl_<termination>_<secret>`; other tokens are left to the next
    authenticator."""

    def authenticate(self, request: Request) -> tuple[Any, LifecycleGrant] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        keyword, _, value = header.partition(" ")
        value = value.strip()
        if keyword.lower() != "bearer" or not value.startswith(f"{lifecycle.TOKEN_PREFIX}_"):
            return None
        termination = lifecycle.termination_for_token(value)
        if termination is None:
            raise exceptions.AuthenticationFailed(
                "lifecycle token is unknown, or its termination is over"
            )
        return AnonymousUser(), LifecycleGrant(termination)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="signalbox"'


class HandshakeRule(BasePermission):
    """A lifecycle token may answer for its own instance; anyone else needs the view's scope
    on the instance's team (checked on the object)."""

    message = "you may not do this"

    def has_permission(self, request: Request, view: Any) -> bool:
        grant = request.auth
        if isinstance(grant, LifecycleGrant):
            if not getattr(view, "grant_may", False):
                self.message = "a lifecycle token cannot do this; use the team's report token"
                return False
            if str(grant.termination.instance_id) != str(view.kwargs.get("pk")):
                self.message = "this lifecycle token answers for another instance"
                return False
            return True
        if _reads(request):
            return True
        rule = ScopeRule()
        allowed = rule.has_permission(request, view)
        self.message = rule.message
        return allowed

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if isinstance(request.auth, LifecycleGrant) or _reads(request):
            return True
        rule = ScopeRule()
        allowed = rule.has_object_permission(request, view, obj)
        self.message = rule.message
        return allowed


def _reads(request: Request) -> bool:
    """A poll by anyone who may read (people, read tokens); instances poll with `report`."""
    return request.method == "GET" and Access.of(request).can(Scope.READ)


class HandshakeView(APIView):
    authentication_classes = [
        LifecycleTokenAuthentication,
        TokenAuthentication,
        authentication.SessionAuthentication,
    ]
    permission_classes = [HandshakeRule]
    grant_may = True
    detail_action = True

    def instance(self, request: Request, pk: int) -> Instance:
        found = get_object_or_404(
            Instance.objects.select_related("service", "service__team", "environment"), pk=pk
        )
        self.check_object_permissions(request, found)
        return found

    def termination(self, request: Request, instance: Instance) -> Termination:
        grant = request.auth
        if isinstance(grant, LifecycleGrant):
            return grant.termination
        termination = lifecycle.open_termination(instance)
        if termination is None:
            raise exceptions.NotFound(
                f"{instance} is not being terminated: there is nothing to answer"
            )
        return termination


LIFECYCLE_ANSWER = inline_serializer(
    "InstanceLifecycle",
    {
        "instance": serializers.IntegerField(),
        "state": serializers.ChoiceField(
            [
                "launching",
                "in_service",
                "draining",
                "terminate_when_ready",
                "stopping",
                "terminated",
            ]
        ),
        "since": serializers.DateTimeField(required=False),
        "deadline": serializers.DateTimeField(required=False, allow_null=True),
        "ready_at": serializers.DateTimeField(required=False, allow_null=True),
        "heartbeat_seconds": serializers.IntegerField(required=False),
        "protected_until": serializers.DateTimeField(required=False, allow_null=True),
    },
)


class LifecycleView(HandshakeView):
    scopes = {"GET": Scope.REPORT}  # or `read`: see _reads

    @extend_schema(
        summary="An instance's lifecycle: keep serving, or drain and say when ready",
        description="Poll with `If-None-Match` set to the last ETag: 304 while nothing changed. "
        "`terminate_when_ready` means: the router no longer sends you requests; finish your "
        "work and POST ready-to-terminate before `deadline` (heartbeats extend it). Anyone who "
        "may read may poll too.",
        responses={200: LIFECYCLE_ANSWER, 304: OpenApiResponse(description="Unchanged.")},
    )
    def get(self, request: Request, pk: int) -> Response:
        instance = self.instance(request, pk)
        body = lifecycle.lifecycle_of(instance)
        protection = Protection.objects.filter(instance=instance, until__gt=timezone.now()).first()
        body["protected_until"] = protection.until.isoformat() if protection else None
        etag = (
            '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20] + '"'
        )
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(body, headers=headers)


class ReasonBody(serializers.Serializer[Any]):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300)


class ReadyView(HandshakeView):
    scopes = {"POST": Scope.REPORT}

    @extend_schema(
        request=ReasonBody,
        responses={200: LIFECYCLE_ANSWER},
        summary="The instance is done: stop it now (idempotent)",
    )
    def post(self, request: Request, pk: int) -> Response:
        instance = self.instance(request, pk)
        body = ReasonBody(data=request.data)
        body.is_valid(raise_exception=True)
        termination = self.termination(request, instance)
        if termination.state not in (
            TerminationState.CONFIRMING,
            TerminationState.AWAITING_READY,
            TerminationState.DRAINING,
        ):
            raise exceptions.NotFound(f"{instance} is already {termination.get_state_display()}")
        lifecycle.ready_to_terminate(termination, body.validated_data.get("reason", ""))
        instance.refresh_from_db()
        return Response(lifecycle.lifecycle_of(instance))


class HeartbeatView(HandshakeView):
    scopes = {"POST": Scope.REPORT}

    @extend_schema(
        request=None,
        responses={200: LIFECYCLE_ANSWER},
        summary="The instance is still finishing: restart the lifecycle timeout",
    )
    def post(self, request: Request, pk: int) -> Response:
        instance = self.instance(request, pk)
        termination = self.termination(request, instance)
        try:
            driver = driver_of(termination.group)
        except LookupError:
            driver = None
        try:
            lifecycle.heartbeat(termination, driver)
        except ScalingDriverError as exc:
            raise exceptions.APIException(f"the platform refused the heartbeat: {exc}") from exc
        return Response(lifecycle.lifecycle_of(instance))


class ProtectionBody(serializers.Serializer[Any]):
    minutes = serializers.IntegerField(
        required=False,
        default=DEFAULT_PROTECTION_MINUTES,
        min_value=1,
        max_value=MAX_PROTECTION_MINUTES,
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300)


class ProtectionView(HandshakeView):
    """ECS-style scale-in protection, set by the instance itself."""

    scopes = {"POST": Scope.REPORT, "DELETE": Scope.REPORT}
    grant_may = False

    @extend_schema(
        request=ProtectionBody,
        responses={200: LIFECYCLE_ANSWER},
        summary="Protect this instance from scale-in for N minutes (default 120, max 2880)",
    )
    def post(self, request: Request, pk: int) -> Response:
        instance = self.instance(request, pk)
        body = ProtectionBody(data=request.data)
        body.is_valid(raise_exception=True)
        minutes = body.validated_data["minutes"]
        until = timezone.now() + timedelta(minutes=minutes)
        access = Access.of(request)
        with transaction.atomic():
            Protection.objects.update_or_create(
                instance=instance,
                defaults={
                    "until": until,
                    "reason": body.validated_data.get("reason", ""),
                    "set_by": access.label(),
                },
            )
            publish(
                ScalingEvent.PROTECTED,
                actor=access,
                subject=instance,
                message=f"{instance} protected from scale-in for {minutes} min"
                + (
                    f" ({body.validated_data['reason']})"
                    if body.validated_data.get("reason")
                    else ""
                ),
                payload={"until": until.isoformat(), "minutes": minutes},
            )
        _mirror(instance, True)
        return Response(lifecycle.lifecycle_of(instance) | {"protected_until": until.isoformat()})

    @extend_schema(request=None, responses={200: LIFECYCLE_ANSWER}, summary="Lift the protection")
    def delete(self, request: Request, pk: int) -> Response:
        instance = self.instance(request, pk)
        deleted, _ = Protection.objects.filter(instance=instance).delete()
        if deleted:
            publish(
                ScalingEvent.PROTECTED,
                actor=Access.of(request),
                subject=instance,
                message=f"{instance} may be chosen for scale-in again",
                payload={"until": None},
            )
            _mirror(instance, False)
        return Response(lifecycle.lifecycle_of(instance) | {"protected_until": None})


def _mirror(instance: Instance, protected: bool) -> None:
    """Tell the platform too, so its own scale-in cannot pick the instance either."""
    ref = (instance.labels or {}).get("driver_ref")
    group = ScalingGroup.objects.filter(
        service_id=instance.service_id, environment_id=instance.environment_id
    ).first()
    if group is None or not ref:
        return
    try:
        driver_of(group).protect(str(ref), protected)
    except (LookupError, ScalingDriverError) as exc:
        # Signalbox's own choice honours the row; the platform's mirror is best effort.
        logger.warning("%s: could not mirror scale-in protection on the platform: %s",
                       instance, exc)  # fmt: skip
