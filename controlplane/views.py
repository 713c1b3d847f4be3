"""The events timeline (the audit log); home is the dashboard's (controlplane/dashboard)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog.models import Environment, Service, Team
from controlplane.timeline import ACTION_FAMILIES, Cursor, EventFilters, event_page, page_link

# Suggestions only: the actor filter takes any name (tokens and system actors too).
ACTOR_SUGGESTIONS = 500


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
    context = {
        "page": page,
        "filters": filters,
        # New events are only ever the newest of everything: other views stay still.
        "live": not filters and page.is_latest,
        "newest_url": page_link(filters),
        "newer_url": page_link(filters, after=page.newer) if page.newer else "",
        "older_url": page_link(filters, before=page.older) if page.older else "",
        "teams": Team.objects.only("slug", "name"),
        "services": services.only("slug", "name", "team__slug", "team__name"),
        "environments": Environment.objects.only("slug", "name"),
        "actors": get_user_model()
        .objects.filter(is_active=True)
        .order_by("username")
        .values_list("username", flat=True)[:ACTOR_SUGGESTIONS],
        "action_families": ACTION_FAMILIES,
    }
    return render(request, "controlplane/events.html", context)
