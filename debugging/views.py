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

from catalog.choices import Scope
from catalog.models import Environment, Service
from catalog.permissions import Access
from debugging import config, windows
from debugging.choices import WindowState
from debugging.models import ConfigVersion, DebugWindow

VERSIONS_SHOWN = 50
WINDOWS_SHOWN = 10


def service_windows(service: Service) -> dict[str, Any]:
    """The service page's "Debug windows" section: open ones, then the latest closed."""
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
    }


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
