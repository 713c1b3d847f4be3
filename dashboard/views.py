"""The dashboard's pages: home, a team, a service (and deploying it), search, the events
timeline. Thin views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from catalog.choices import Scope
from catalog.models import Environment, ExternalDependency, Service, Team
from catalog.permissions import Access
from controlplane.events import families
from controlplane.timeline import Cursor, EventFilters, event_page, page_link
from dashboard import external, scaling_chart, sections
from dashboard import search as site_search
from dashboard import service as service_data
from dashboard import team_page as team_page_data
from debugging import views as debugging_views
from deployments import actions
from deployments.choices import Strategy
from health import rollups

# The ranges the health history API serves (health.api.views.HISTORY_RANGES).
CHART_RANGES = ("1h", "24h", "7d", "30d")
# Suggestions only: the events page's actor filter takes any name (tokens and system actors).
SERVICE_OPTIONS = 300  # the events page's service list, at most (a team's services fit)
ACTOR_SUGGESTIONS = 500


def _acting_teams(request: HttpRequest) -> set[int] | bool:
    """Teams whose incidents this person may acknowledge (deployers and owners); True for
    platform admins, who may act on every team's (and need no list of them all)."""
    access = Access.of(request)
    if access.is_admin:
        return True
    return {t.pk for t in access.teams_with(Scope.DEPLOY)}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """What needs attention now: incidents, unhealthy services, rollouts, open circuits."""
    context = sections.home_context()
    context["acting_teams"] = _acting_teams(request)
    return render(request, "dashboard/home.html", context)


@login_required
def team_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's services and their health, and its rollouts, incidents and circuits."""
    team = get_object_or_404(Team, slug=slug)
    context = team_page_data.page_context(request, team, _acting_teams(request))
    return render(request, "dashboard/team.html", context)


@login_required
def service_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Everything about one service an on-call engineer looks for, and what they may do."""
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    environments = list(Environment.objects.all())
    environment = service_data.pick_environment(environments, request.GET.get("env", ""))
    history = service_data.rollouts(service)
    circuits = sections.service_circuits_context(service)
    access = Access.of(request)
    can_deploy = access.can(Scope.DEPLOY, service.team, service)
    routed = service_data.routed_environments(service)
    markers = service_data.chart_markers(service, environment, history)
    context: dict[str, Any] = {
        "service": service,
        "environments": environments,
        "environment": environment,
        "healths": service_data.healths(service, environments),
        "checks": service_data.instance_checks(service),
        "instances_shown": service_data.INSTANCE_ROWS,
        "versions": service_data.versions_by_environment(service),
        "deploy_history": history[: service_data.DEPLOY_HISTORY_ROWS],
        "deploy_service": service,
        "markers": markers,
        "scaling": scaling_chart.for_service(service, environment, markers),
        "uptime": rollups.uptime(service.pk, environment.pk) if environment else {},
        "dependencies": service_data.dependencies(
            service, environment, circuits["owned_circuits"], circuits["circuits_towards"]
        ),
        "events": service_data.recent_events(service),
        "can_deploy": can_deploy,
        "deploy_environments": [e for e in environments if e.pk in routed],
        "strategies": Strategy.choices,
        "chart_ranges": CHART_RANGES,
        "acting_teams": {service.team_id} if can_deploy else set(),
        **sections.service_rollouts_context(service, history),
        **circuits,
        **sections.service_incidents_context(service),
        **debugging_views.service_windows(
            service, request, can_deploy=can_deploy, environments=environments
        ),
    }
    return render(request, "dashboard/service.html", context)


def _since(raw: str) -> datetime | str:
    """The `since` of the markers endpoint: unix seconds or an ISO 8601 time with its
    offset, not in the future; earlier than MARKER_DAYS ago reads as MARKER_DAYS ago (the
    markers go back no further). A string is the reason it was refused."""
    earliest = timezone.now() - timedelta(days=service_data.MARKER_DAYS)
    if not raw:
        return earliest
    try:
        at = datetime.fromtimestamp(float(raw), tz=UTC)
    except (ValueError, OverflowError, OSError):
        try:
            parsed = parse_datetime(raw)
        except ValueError:
            parsed = None
        if parsed is None:
            return "not unix seconds nor an ISO 8601 time"
        if timezone.is_naive(parsed):
            return "an ISO 8601 time needs its offset (e.g. Z)"
        at = parsed
    if at > timezone.now():
        return "is in the future"
    return max(at, earliest)


def _ends(marker: dict[str, Any], now: float) -> float:
    if marker["until"] is not None:
        return float(marker["until"])
    return float(marker["at"]) if marker["kind"] == "scale" else now


@login_required
def service_markers(request: HttpRequest, slug: str) -> HttpResponse:
    """What the service page's charts mark (chart_markers: deploys, scale events,
    incidents) in one environment from `since`, as JSON, for the charts of floors below
    the dashboard (the health service page, the circuit page), which name this by URL.
    Seen by whoever may see the service page; seven queries whatever the fleet."""
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    wanted = request.GET.get("env", "")
    environments = list(Environment.objects.all())
    environment = service_data.pick_environment(environments, wanted)
    if wanted and (environment is None or environment.slug != wanted):
        return JsonResponse({"field": "env", "reason": f"no environment {wanted!r}"}, status=400)
    since = _since(request.GET.get("since", ""))
    if isinstance(since, str):
        return JsonResponse({"field": "since", "reason": since}, status=400)
    markers = service_data.chart_markers(service, environment, service_data.rollouts(service))
    cut, now = since.timestamp(), timezone.now().timestamp()
    # what overlaps [since, now]: a rollout or incident not over yet lasts until now
    shown = [m for m in markers if m["at"] >= cut or _ends(m, now) >= cut]
    return JsonResponse({
        "service": service.slug, "environment": environment.slug if environment else None,
        "since": cut, "markers": shown,
    })  # fmt: skip


@login_required
def external_list(request: HttpRequest) -> HttpResponse:
    """Every external dependency with its state, source and the circuits open towards it."""
    return render(request, "dashboard/external_list.html", {"views": external.list_views()})


@login_required
def external_page(request: HttpRequest, slug: str) -> HttpResponse:
    """One external dependency: their page, our probe, our circuits, our dependents, a verdict."""
    dependency = get_object_or_404(ExternalDependency, slug=slug)
    return render(
        request, "dashboard/external.html", {"view": external.dependency_view(dependency)}
    )


@login_required
@require_POST
def deploy(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a rollout of this service from its page (the same rules as the API)."""
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    access = Access.of(request)
    if not access.can(Scope.DEPLOY, service.team, service):
        return HttpResponseForbidden(access.why_not(Scope.DEPLOY, service.team, service))
    back = redirect(f"{service.get_absolute_url()}#deploy")
    environment = Environment.objects.filter(slug=request.POST.get("environment", "")).first()
    version = request.POST.get("version", "").strip()
    if environment is None:
        messages.error(request, "Not deployed: environment: choose one of the list.")
        return back
    if not version:
        messages.error(request, "Not deployed: version: give the version to roll out.")
        return back
    try:
        rollout, _ = actions.start_rollout(
            access=access,
            service=service,
            environment=environment,
            version=version,
            strategy=request.POST.get("strategy") or None,
            reason=request.POST.get("reason", "").strip(),
            freeze_override_reason=request.POST.get("freeze_override_reason", "").strip(),
        )
    except actions.RolloutError as error:
        messages.error(request, f"Not deployed: {error.message}")
        return back
    messages.success(
        request, f"Rollout #{rollout.pk} started: {service.slug} {version} in {environment.slug}."
    )
    return redirect(rollout.get_absolute_url())


@login_required
def search(request: HttpRequest) -> HttpResponse:
    """GET /search?q=: services, teams and rollouts; the dropdown's fragment for htmx."""
    query = request.GET.get("q", "").strip()
    found = site_search.search(query)
    context = {"query": query, "results": found}
    if request.headers.get("HX-Request"):
        return render(request, "dashboard/partials/search_results.html", context)
    return render(request, "dashboard/search.html", context)


@login_required
def events(request: HttpRequest) -> HttpResponse:
    """The audit log: every event, newest first, filtered by team, service, env, actor, action."""
    filters = EventFilters.from_query(request.GET)
    page = event_page(
        filters,
        before=Cursor.parse(request.GET.get("before", "")),
        after=Cursor.parse(request.GET.get("after", "")),
    )
    services = Service.objects.select_related("team").order_by("team__slug", "slug")
    if filters.team:
        services = services.filter(team__slug=filters.team)
    # Past SERVICE_OPTIONS the service filter is a text field (a team's list once one is
    # picked): every service was 10,000 options, 585 KB of the page's 629 KB (bench.dashboard).
    service_options = list(
        services.only("slug", "name", "team__slug", "team__name")[: SERVICE_OPTIONS + 1]
    )
    context = {
        "page": page,
        "filters": filters,
        # New events are only ever the newest of everything: other views stay still.
        "live": not filters and page.is_latest,
        "newest_url": page_link(filters),
        "newer_url": page_link(filters, after=page.newer) if page.newer else "",
        "older_url": page_link(filters, before=page.older) if page.older else "",
        "teams": Team.objects.only("slug", "name"),
        "services": service_options if len(service_options) <= SERVICE_OPTIONS else None,
        "environments": Environment.objects.only("slug", "name"),
        "actors": get_user_model()
        .objects.filter(is_active=True)
        .order_by("username")
        .values_list("username", flat=True)[:ACTOR_SUGGESTIONS],
        "action_families": families(),
    }
    return render(request, "dashboard/events.html", context)
