"""Debugging pages: a service's runtime config with its versions and one-click revert, and
closing a debug window early (the service page shows the windows)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from rest_framework import exceptions

from catalog.choices import LIVE_LIFECYCLES, Scope
from catalog.models import Environment, Instance, Service
from catalog.permissions import Access
from debugging import config, windows
from debugging.choices import LEVELS, Delivery, WindowState
from debugging.models import ConfigVersion, DebugWindow

VERSIONS_SHOWN = 50
WINDOWS_SHOWN = 10


INSTANCES_OFFERED = 200


def service_windows(
    service: Service,
    request: HttpRequest | None = None,
    *,
    can_deploy: bool | None = None,
    environments: list[Environment] | None = None,
) -> dict[str, Any]:
    """The service page's "Debug windows" section: open ones, then the latest closed; for
    owners the delivery form, for deployers and owners the "open a window" form. The page
    passes what it knows already (`can_deploy`, `environments`) to save the queries."""
    access = Access.of(request) if request is not None else None
    can_open = bool(access and access.can(Scope.DEPLOY, service.team, service))
    if can_deploy is not None:
        can_open = bool(access) and can_deploy
    # Owners are deployers too: only a deployer can be an owner.
    can_write = can_open and bool(access and access.can(Scope.WRITE, service.team, service))
    forms: dict[str, Any] = {"debug_can_write": can_write, "debug_can_open": can_open}
    if can_write:
        setting = windows.setting_of(service)
        forms["debug_delivery"] = _delivery_form(service, setting.method, setting.webhook_url)
        forms["debug_delivery"]["secret"] = windows.delivery_document(service, setting)[
            "webhook_secret"
        ]
    if can_open:
        forms["debug_open"] = _open_form(service, environments=environments)
    found = list(
        DebugWindow.objects.filter(service=service)
        .select_related("environment", "instance")
        .prefetch_related("targets")
        .order_by("state", "-opened_at")[:WINDOWS_SHOWN]
    )
    now = timezone.now()
    return {
        "debug_windows": found,
        "debug_windows_now": now,
        "debug_windows_open": [w for w in found if w.state == WindowState.OPEN],
        **forms,
    }


def _delivery_form(
    service: Service, method: str, url: str, errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {
        "method": method,
        "webhook_url": url,
        "methods": Delivery.choices,
        "errors": errors or {},
        "secret": {"set": False, "masked": ""},
    }


def _open_form(
    service: Service,
    values: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    *,
    environments: list[Environment] | None = None,
) -> dict[str, Any]:
    instances = list(
        Instance.objects.filter(service=service, lifecycle__in=LIVE_LIFECYCLES)
        .select_related("environment")
        .order_by("environment__order", "zone", "host", "port")[:INSTANCES_OFFERED]
    )
    return {
        "values": {"level": "DEBUG", "minutes": 15, "scope": "", **(values or {})},
        "errors": errors or {},
        "levels": LEVELS,
        "environments": environments
        if environments is not None
        else list(Environment.objects.order_by("order", "slug")),
        "zone_options": [
            (f"zone:{z}", f"zone {z}") for z in sorted({i.zone for i in instances if i.zone})
        ],
        "instance_options": [
            (
                f"instance:{i.pk}",
                f"{i.address} ({i.environment.slug}{', ' + i.zone if i.zone else ''})",
            )
            for i in instances
        ],
    }


def _field_errors(exc: exceptions.ValidationError | config.Invalid) -> dict[str, list[str]]:
    if isinstance(exc, config.Invalid):
        return exc.fields
    detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    return {
        str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()
    }


@login_required
@require_POST
def set_delivery(request: HttpRequest, service: str) -> HttpResponse:
    """The service page's delivery form: the same checks and permission as
    PATCH /api/v1/debug-delivery/<service>; a bad value re-shows the form with the reason."""
    found = get_object_or_404(Service.objects.select_related("team"), slug=service)
    if not Access.of(request).can(Scope.WRITE, found.team, found):
        raise PermissionDenied("only the owning team's owners may change how it takes windows")
    data: dict[str, Any] = {
        "method": request.POST.get("method", ""),
        "webhook_url": request.POST.get("webhook_url", "").strip(),
    }
    if request.POST.get("remove_secret"):
        data["webhook_secret"] = ""
    elif request.POST.get("webhook_secret"):
        data["webhook_secret"] = request.POST["webhook_secret"]
    try:
        windows.set_delivery(found, data, actor=request.user)
    except config.Invalid as exc:
        form = _delivery_form(found, data["method"], data["webhook_url"], exc.fields)
        form["secret"] = windows.delivery_document(found, windows.setting_of(found))[
            "webhook_secret"
        ]
        return render(
            request,
            "debugging/service_form.html",
            {"service": found, "debug_delivery": form, "debug_can_write": True},
            status=400,
        )
    messages.success(request, f"{found.slug} now takes debug windows by {data['method']}.")
    return HttpResponseRedirect(found.get_absolute_url() + "#service-debug-windows")


@login_required
@require_POST
def open_window(request: HttpRequest, service: str) -> HttpResponse:
    """The service page's "open a debug window" form: the same checks and permission as
    POST /api/v1/debug-windows; a bad value re-shows the form with the reason by the field."""
    from debugging.api.views import parse_opening

    found = get_object_or_404(Service.objects.select_related("team"), slug=service)
    access = Access.of(request)
    if not access.can(Scope.DEPLOY, found.team, found):
        raise PermissionDenied("only the owning team's deployers and owners may open one")
    posted = {k: request.POST.get(k, "").strip() for k in _OPEN_FIELDS}
    data: dict[str, Any] = {
        "service": found.slug,
        "environment": posted["environment"],
        "logger": posted["logger"],
        "level": posted["level"],
        "reason": posted["reason"],
        "incident": posted["incident"],
    }
    errors: dict[str, list[str]] = {}
    try:
        data["minutes"] = float(posted["minutes"])
    except ValueError:
        errors["minutes"] = ["a positive number of minutes"]
    scope = posted["scope"]
    if scope.startswith("instance:") and scope[9:].isdigit():
        data["instance"] = int(scope[9:])
    elif scope.startswith("zone:"):
        data["zone"] = scope[5:]
    elif scope:
        errors["scope"] = ["the whole service, a zone or an instance"]
    try:
        if errors:
            raise exceptions.ValidationError(errors)
        opening = parse_opening(data)
    except exceptions.ValidationError as exc:
        return render(
            request,
            "debugging/service_form.html",
            {
                "service": found,
                "debug_open": _open_form(found, posted, {**errors, **_field_errors(exc)}),
                "debug_can_open": True,
            },
            status=400,
        )
    window = windows.open_window(opening, actor=access, user=request.user, label=access.label())
    messages.success(request, f"Debug window opened: {window}, until {window.ends_at:%H:%M} UTC.")
    return HttpResponseRedirect(found.get_absolute_url() + "#service-debug-windows")


_OPEN_FIELDS = ("environment", "logger", "level", "minutes", "scope", "reason", "incident")


@login_required
def config_page(request: HttpRequest, service: str, environment: str) -> HttpResponse:
    found = get_object_or_404(Service.objects.select_related("team"), slug=service)
    env = get_object_or_404(Environment, slug=environment)
    current = config.current(found, env)
    versions = ConfigVersion.objects.filter(service=found, environment=env).order_by("-number")[
        :VERSIONS_SHOWN
    ]
    return render(
        request,
        "debugging/config.html",
        {
            "service": found,
            "environment": env,
            "current": current,
            "entries": [config.shown_entry(e) for e in current.entries.all()] if current else [],
            "versions": versions,
            "can_write": Access.of(request).can(Scope.WRITE, found.team, found),
        },
    )


@login_required
@require_POST
def revert(request: HttpRequest, service: str, environment: str, number: int) -> HttpResponse:
    found = get_object_or_404(Service.objects.select_related("team"), slug=service)
    env = get_object_or_404(Environment, slug=environment)
    if not Access.of(request).can(Scope.WRITE, found.team, found):
        raise PermissionDenied("only the owning team's owners may change its runtime config")
    try:
        made = config.revert(found, env, number, actor=request.user)
    except config.Invalid as exc:
        messages.error(request, f"Not reverted: {exc}")
    else:
        if made is None:
            messages.info(request, f"The config already equals version {number}.")
        else:
            messages.success(request, f"Reverted to version {number} (now v{made.number}).")
    return HttpResponseRedirect(request.POST.get("next") or request.path.rsplit("/", 3)[0])


@login_required
@require_POST
def close_window(request: HttpRequest, pk: int) -> HttpResponse:
    window = get_object_or_404(DebugWindow.objects.select_related("service__team"), pk=pk)
    if not Access.of(request).can(Scope.DEPLOY, window.service.team, window.service):
        raise PermissionDenied("only the owning team's deployers and owners may close it")
    if windows.close(window, actor=request.user, early=True):
        messages.success(
            request,
            f"Debug window closed: {window.logger} goes back and is read back on each instance.",
        )
    else:
        messages.info(request, "That debug window was closed already.")
    return HttpResponseRedirect(window.service.get_absolute_url())
