"""Health dashboard pages: the overview grid, a service's health, an instance's check."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render

from catalog.models import Environment, Instance, Service, Team
from health import overview as overview_queries
from health import rollups
from health.choices import ServiceStatus
from health.maintenance import in_maintenance
from health.models import (
    CheckSpec,
    Heartbeat,
    InstanceCheck,
    MaintenanceWindow,
    ServiceHealth,
    Transition,
)

HISTORY_RANGES = ("1h", "24h", "7d", "30d")


def _environment(request: HttpRequest, environments: list[Environment]) -> Environment | None:
    wanted = request.GET.get("env", "")
    return next(
        (e for e in environments if e.slug == wanted), environments[0] if environments else None
    )


def _bad_filter(field: str, reason: str) -> HttpResponse:
    # Plain text: the message quotes what the user sent.
    return HttpResponseBadRequest(
        f"{field}: {reason}. Fix or remove it from the address.",
        content_type="text/plain; charset=utf-8",
    )


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """One environment's services, worst first, a page at a time, with counts per state.

    The same few queries for any fleet size: the counts and the page are done by the
    database (health/overview.py), and only the page's services are loaded.
    """
    environments = list(Environment.objects.all())
    environment = _environment(request, environments)
    teams = list(Team.objects.only("slug", "name"))
    filters = {k: request.GET.get(k, "").strip() for k in ("team", "state", "q")}
    team = next((t for t in teams if t.slug == filters["team"]), None)
    if filters["team"] and team is None:
        return _bad_filter("team", f"no team has the slug {filters['team']!r}")
    if filters["state"] and filters["state"] not in ServiceStatus.values:
        return _bad_filter(
            "state", f"{filters['state']!r} is not one of {', '.join(ServiceStatus.values)}"
        )
    if len(filters["q"]) > overview_queries.MAX_QUERY_LENGTH:
        return _bad_filter("q", f"at most {overview_queries.MAX_QUERY_LENGTH} characters")
    context: dict[str, Any] = {
        "environments": environments,
        "environment": environment,
        "teams": teams,
        "filters": filters,
        "states": ServiceStatus.choices,
    }
    if environment is None:
        return render(request, "health/overview.html", context)
    scope = overview_queries.Scope(environment, team, filters["q"])
    page = Paginator(
        overview_queries.worst_first(scope, filters["state"]), overview_queries.TILES_PER_PAGE
    ).get_page(request.GET.get("page"))
    context.update(
        overview_queries.state_counts(scope),
        page=page,
        grid=overview_queries.tiles_by_team(list(page.object_list), environment),
    )
    return render(request, "health/overview.html", context)


@login_required
def service_page(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    environments = list(Environment.objects.all())
    environment = _environment(request, environments)
    context: dict[str, Any] = {
        "service": service,
        "environments": environments,
        "environment": environment,
    }
    if environment is not None:
        health = ServiceHealth.objects.filter(service=service, environment=environment).first()
        health = health or ServiceHealth(service=service, environment=environment)
        health.service, health.environment = service, environment
        checks = (
            InstanceCheck.objects.select_related(
                "instance", "instance__service", "instance__environment"
            )
            .filter(instance__service=service, instance__environment=environment)
            .order_by("instance__host", "instance__port")
        )
        context.update(
            health=health,
            page=Paginator(checks, 100).get_page(request.GET.get("page")),
            spec=CheckSpec.objects.filter(service=service).first()
            or CheckSpec.default_for(service),
            uptime=rollups.uptime(service.pk, environment.pk),
            transitions=Transition.objects.filter(service=service, environment=environment)[:50],
            heartbeats=Heartbeat.objects.filter(service=service).select_related("service"),
            windows=MaintenanceWindow.objects.filter(service=service).select_related("environment"),
            in_maintenance=in_maintenance(service.pk, environment.pk),
            ranges=HISTORY_RANGES,
        )
    return render(request, "health/service.html", context)


@login_required
def instance_page(request: HttpRequest, pk: int) -> HttpResponse:
    instance = get_object_or_404(
        Instance.objects.select_related("service", "service__team", "environment"), pk=pk
    )
    check = InstanceCheck.objects.select_related("instance").filter(instance=instance).first()
    override = CheckSpec.objects.filter(instance=instance).first()
    spec = override or CheckSpec.objects.filter(service=instance.service).first()
    return render(
        request,
        "health/instance.html",
        {
            "instance": instance,
            "check": check,
            "spec": spec or CheckSpec.default_for(instance.service),
            "overridden": override is not None,
            "transitions": Transition.objects.filter(instance=instance)[:50],
        },
    )
