"""Debugging API: runtime config (read masked, change, versions, revert), how a service takes
debug windows, debug windows (open, list, close), and the levels client instances report."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.choices import Scope
from catalog.models import Environment, Instance, Service, Team
from catalog.permissions import Access, ScopeRule
from controlplane.api import ConflictError, Pagination, refuse_unknown_parameters
from debugging import config, windows
from debugging.choices import WindowState
from debugging.models import AppliedLevels, ConfigVersion, DebugWindow


def _service_env(kwargs: dict[str, Any]) -> tuple[Service, Environment]:
    service = get_object_or_404(Service.objects.select_related("team"), slug=kwargs["service"])
    environment = get_object_or_404(Environment, slug=kwargs["environment"])
    return service, environment


def _require(request: Request, scope: str, service: Service) -> None:
    access = Access.of(request)
    if not access.can(scope, service.team, service):
        raise exceptions.PermissionDenied(access.why_not(scope, service.team, service))


def _invalid(exc: config.Invalid) -> exceptions.ValidationError:
    return exceptions.ValidationError(exc.fields)


def version_document(
    version: ConfigVersion | None, service: Service, environment: Environment
) -> dict[str, Any]:
    entries = list(version.entries.all()) if version else []
    return {
        "service": service.slug,
        "environment": environment.slug,
        "version": version.number if version else 0,
        "created_at": version.created_at.isoformat() if version else None,
        "actor": version.actor_label if version else "",
        "message": version.message if version else "",
        "reverted_to": version.reverted_to if version else None,
        "entries": [config.shown_entry(e) for e in entries],
    }


class RuntimeConfigView(APIView):
    """GET the current (or `?version=N`) config, secrets masked; PATCH to change it:
    `{"set": [{"kind", "key", "value"}], "remove": [{"kind", "key"}], "message",
    "expected_version"}`; each change is a new version and one audited event."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ, "PATCH": Scope.WRITE}
    query_parameters = ("version",)

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        service = Service.objects.select_related("team").filter(slug=self.kwargs["service"]).first()
        return (service.team if service else None), service

    def get(self, request: Request, service: str, environment: str) -> Response:
        refuse_unknown_parameters(request, self)
        found, env = _service_env(self.kwargs)
        raw = request.query_params.get("version")
        if raw is not None:
            if not raw.isdigit():
                raise exceptions.ValidationError({"version": ["must be a version number"]})
            version = ConfigVersion.objects.filter(
                service=found, environment=env, number=int(raw)
            ).first()
            if version is None:
                raise exceptions.NotFound(f"no version {raw} of this config")
        else:
            version = config.current(found, env)
        return Response(version_document(version, found, env))

    def patch(self, request: Request, service: str, environment: str) -> Response:
        found, env = _service_env(self.kwargs)
        _require(request, Scope.WRITE, found)
        data = request.data if isinstance(request.data, dict) else {}
        unknown = sorted(set(data) - {"set", "remove", "message", "expected_version"})
        if unknown:
            raise exceptions.ValidationError(
                {k: ["unknown field; use set, remove, message, expected_version"] for k in unknown}
            )
        set_raw, remove_raw = data.get("set", []), data.get("remove", [])
        if not isinstance(set_raw, list):
            raise exceptions.ValidationError({"set": ["must be a list of {kind, key, value}"]})
        if not isinstance(remove_raw, list):
            raise exceptions.ValidationError({"remove": ["must be a list of {kind, key}"]})
        expected = data.get("expected_version")
        if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)):
            raise exceptions.ValidationError({"expected_version": ["must be a version number"]})
        message = data.get("message", "")
        if not isinstance(message, str):
            raise exceptions.ValidationError({"message": ["must be a string"]})
        method = config.delivery_method(found)
        try:
            items = [config.clean_item(raw, f"set.{i}", method) for i, raw in enumerate(set_raw)]
            remove = [_pair(raw, f"remove.{i}") for i, raw in enumerate(remove_raw)]
            if not items and not remove:
                raise config.Invalid({"set": ["nothing to change: give set or remove"]})
            config.change(
                found,
                env,
                set_items=items,
                remove=remove,
                message=message,
                expected_version=expected,
                actor=Access.of(request),
            )
        except config.Invalid as exc:
            raise _invalid(exc) from None
        except config.Stale as exc:
            raise ConflictError(str(exc)) from None
        return Response(version_document(config.current(found, env), found, env))


def _pair(raw: Any, where: str) -> tuple[str, str]:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("kind"), str)
        or not isinstance(raw.get("key"), str)
    ):
        raise config.Invalid({where: ["must be an object with kind and key"]})
    return raw["kind"], raw["key"]


class RuntimeConfigVersionsView(APIView):
    """The versions of a config, newest first (paginated), with who changed it and why."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ}
    query_parameters = ("page", "page_size")

    def get(self, request: Request, service: str, environment: str) -> Response:
        refuse_unknown_parameters(request, self)
        found, env = _service_env(self.kwargs)
        versions = ConfigVersion.objects.filter(service=found, environment=env).order_by("-number")
        paginator = Pagination()
        page = paginator.paginate_queryset(versions, request, view=self) or []
        return paginator.get_paginated_response(
            [
                {
                    "version": v.number,
                    "created_at": v.created_at.isoformat(),
                    "actor": v.actor_label,
                    "message": v.message,
                    "reverted_to": v.reverted_to,
                }
                for v in page
            ]
        )


class RuntimeConfigRevertView(APIView):
    """POST `{"version": N}`: a new version equal to version N, one audited event."""

    permission_classes = [ScopeRule]
    scopes = {"POST": Scope.WRITE}
    team_for_create = RuntimeConfigView.team_for_create

    def post(self, request: Request, service: str, environment: str) -> Response:
        found, env = _service_env(self.kwargs)
        _require(request, Scope.WRITE, found)
        to = request.data.get("version") if isinstance(request.data, dict) else None
        if not isinstance(to, int) or isinstance(to, bool) or to < 1:
            raise exceptions.ValidationError({"version": ["required: the version to go back to"]})
        try:
            config.revert(found, env, to, actor=Access.of(request))
        except config.Invalid as exc:
            raise _invalid(exc) from None
        return Response(version_document(config.current(found, env), found, env))


class DeliveryView(APIView):
    """GET/PATCH how a service takes debug windows: `{"method": "client"|"actuator"|"webhook",
    "webhook_url", "webhook_secret"}` (the URL checked by the outbound guard; the secret is
    write-only and read back masked)."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ, "PATCH": Scope.WRITE}

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        service = Service.objects.select_related("team").filter(slug=self.kwargs["service"]).first()
        return (service.team if service else None), service

    def get(self, request: Request, service: str) -> Response:
        found = get_object_or_404(Service, slug=service)
        return Response(windows.delivery_document(found, windows.setting_of(found)))

    def patch(self, request: Request, service: str) -> Response:
        found = get_object_or_404(Service.objects.select_related("team"), slug=service)
        _require(request, Scope.WRITE, found)
        data = request.data if isinstance(request.data, dict) else {}
        try:
            setting = windows.set_delivery(found, data, actor=Access.of(request))
        except config.Invalid as exc:
            raise _invalid(exc) from None
        return Response(windows.delivery_document(found, setting))


def window_document(window: DebugWindow) -> dict[str, Any]:
    return {
        "id": window.pk,
        "service": window.service.slug,
        "environment": window.environment.slug,
        "instance": window.instance_id,
        "zone": window.zone,
        "scope": window.scope_label(),
        "logger": window.logger,
        "level": window.level,
        "method": window.method,
        "reason": window.reason,
        "incident": window.incident_ref,
        "opened_by": window.opened_by_label,
        "opened_at": window.opened_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "state": window.state,
        "closed_at": window.closed_at.isoformat() if window.closed_at else None,
        "closed_by": window.closed_by_label,
        "targets": [
            {
                "instance": t.instance_id,
                "address": t.instance.address,
                "previous_level": t.previous_level,
                "applied_at": t.applied_at.isoformat() if t.applied_at else None,
                "apply_error": t.apply_error,
                "revert": t.revert,
                "read_back": t.read_back,
                "revert_detail": t.revert_detail,
            }
            for t in window.targets.all()
        ],
    }


WINDOW_FIELDS = {
    "service",
    "environment",
    "logger",
    "level",
    "minutes",
    "duration",
    "reason",
    "instance",
    "zone",
    "incident",
}


def parse_opening(data: Any) -> windows.Opening:
    """A window request, or ValidationError naming each bad field."""
    if not isinstance(data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["send a JSON object"]})
    errors: dict[str, list[str]] = {}
    for name in sorted(set(data) - WINDOW_FIELDS):
        errors[name] = ["unknown field; use " + ", ".join(sorted(WINDOW_FIELDS))]
    service = (
        Service.objects.select_related("team").filter(slug=data.get("service")).first()
        if isinstance(data.get("service"), str)
        else None
    )
    if service is None:
        errors["service"] = ["required: the slug of a service"]
    environment = (
        Environment.objects.filter(slug=data.get("environment")).first()
        if isinstance(data.get("environment"), str)
        else None
    )
    if environment is None:
        errors["environment"] = ["required: the slug of an environment"]
    name = data.get("logger")
    if not isinstance(name, str) or not config.KEY_PATTERN.match(name):
        errors["logger"] = ["required: a logger name such as payments.client (or root)"]
    level = ""
    if service is not None:
        try:
            level = config.check_level(data.get("level"), windows.setting_of(service).method)
        except ValueError as exc:
            errors["level"] = [str(exc)]
    duration = _duration(data, errors)
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["required: why (it is shown with the window and in the audit log)"]
    incident = data.get("incident", "")
    if not isinstance(incident, str) or len(incident) > 300:
        errors["incident"] = ["an incident id or URL, at most 300 characters"]
    instance = None
    if data.get("instance") is not None:
        instance = Instance.objects.filter(
            pk=data["instance"] if isinstance(data["instance"], int) else -1,
            service=service,
            environment=environment,
        ).first()
        if instance is None:
            errors["instance"] = ["not an instance of this service in this environment"]
    zone = data.get("zone", "")
    if not isinstance(zone, str) or len(zone) > 63:
        errors["zone"] = ["a zone name, at most 63 characters"]
    elif zone and instance is not None:
        errors["zone"] = ["give an instance or a zone, not both"]
    if errors:
        raise exceptions.ValidationError(errors)
    assert service is not None and environment is not None and duration is not None
    assert isinstance(name, str) and isinstance(reason, str)
    return windows.Opening(
        service, environment, name, level, duration, reason.strip(), instance, zone, incident
    )


def _duration(data: dict[str, Any], errors: dict[str, list[str]]) -> timedelta | None:
    from debugging.delivery import BadWait, parse_duration

    longest = windows.max_duration()
    raw = data.get("minutes")
    field = "minutes"
    try:
        if raw is not None:
            if not isinstance(raw, (int, float)) or isinstance(raw, bool) or raw <= 0:
                raise BadWait("a positive number of minutes")
            duration = timedelta(minutes=raw)
        elif isinstance(data.get("duration"), str):
            field = "duration"
            duration = timedelta(seconds=parse_duration(data["duration"]))
        else:
            raise BadWait("required: minutes (a number) or duration (15m, 2h)")
    except BadWait as exc:
        errors[field] = [str(exc)]
        return None
    if duration <= timedelta(0):
        errors[field] = ["must be longer than zero"]
        return None
    if duration > longest:
        hours = longest.total_seconds() / 3600
        errors[field] = [f"at most {hours:g} h (SIGNALBOX_DEBUG_WINDOW_MAX_SECONDS)"]
        return None
    return duration


class DebugWindowListView(APIView):
    """GET windows (`?service=`, `?environment=`, `?state=open|closed`, `?incident=`);
    POST to open one."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ, "POST": Scope.DEPLOY}
    query_parameters = ("service", "environment", "state", "incident", "page", "page_size")

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        slug = request.data.get("service") if isinstance(request.data, dict) else None
        service = (
            Service.objects.select_related("team").filter(slug=slug).first()
            if isinstance(slug, str)
            else None
        )
        return (service.team if service else None), service

    def get(self, request: Request) -> Response:
        refuse_unknown_parameters(request, self)
        found: QuerySet[DebugWindow] = DebugWindow.objects.select_related(
            "service", "environment"
        ).prefetch_related("targets__instance")
        params = request.query_params
        if "service" in params:
            found = found.filter(service__slug=params["service"])
        if "environment" in params:
            found = found.filter(environment__slug=params["environment"])
        if "state" in params:
            if params["state"] not in WindowState.values:
                raise exceptions.ValidationError({"state": ["open or closed"]})
            found = found.filter(state=params["state"])
        if "incident" in params:
            found = found.filter(incident_ref=params["incident"])
        paginator = Pagination()
        page = paginator.paginate_queryset(found, request, view=self) or []
        return paginator.get_paginated_response([window_document(w) for w in page])

    def post(self, request: Request) -> Response:
        opening = parse_opening(request.data)
        _require(request, Scope.DEPLOY, opening.service)
        access = Access.of(request)
        user = access.user if access.token is None and access.user.is_authenticated else None
        window = windows.open_window(opening, actor=access, user=user, label=access.label())
        return Response(window_document(window), status=status.HTTP_201_CREATED)


class DebugWindowDetailView(APIView):
    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ}

    def get(self, request: Request, pk: int) -> Response:
        return Response(window_document(get_object_or_404(DebugWindow, pk=pk)))


class DebugWindowCloseView(APIView):
    """POST: close an open window early; the level goes back and is read back."""

    permission_classes = [ScopeRule]
    scopes = {"POST": Scope.DEPLOY}
    detail_action = True

    def post(self, request: Request, pk: int) -> Response:
        window = get_object_or_404(DebugWindow.objects.select_related("service__team"), pk=pk)
        _require(request, Scope.DEPLOY, window.service)
        if not windows.close(window, actor=Access.of(request), early=True):
            raise ConflictError("this debug window is closed already")
        window.refresh_from_db()
        return Response(window_document(window))


class AppliedLevelsView(APIView):
    """POST `{"instance": id, "levels": {"logger": "LEVEL"}}` from a client instance (a
    `report` token): what it has applied, which is how a window's revert is read back."""

    permission_classes = [ScopeRule]
    scopes = {"POST": Scope.REPORT}

    def team_for_create(self, request: Request) -> tuple[Team | None, Service | None]:
        instance = self._instance(request)
        return (instance.service.team, instance.service) if instance else (None, None)

    @staticmethod
    def _instance(request: Request) -> Instance | None:
        raw = request.data.get("instance") if isinstance(request.data, dict) else None
        if not isinstance(raw, int) or isinstance(raw, bool):
            return None
        return Instance.objects.select_related("service__team").filter(pk=raw).first()

    def post(self, request: Request) -> Response:
        instance = self._instance(request)
        if instance is None:
            raise exceptions.ValidationError({"instance": ["required: your instance id"]})
        levels = request.data.get("levels") if isinstance(request.data, dict) else None
        if not isinstance(levels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in levels.items()
        ):
            raise exceptions.ValidationError({"levels": ["an object of logger: LEVEL"]})
        AppliedLevels.objects.update_or_create(instance=instance, defaults={"levels": levels})
        return Response(status=status.HTTP_204_NO_CONTENT)
