"""Dashboard pages owned by the control plane itself: home and the events timeline."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from controlplane.models import Event


@login_required
def home(request: HttpRequest) -> HttpResponse:
    recent = Event.objects.select_related("team", "service", "environment")[:20]
    return render(request, "controlplane/home.html", {"events": recent})


@login_required
def events(request: HttpRequest) -> HttpResponse:
    """The audit log: every event, newest first, filtered by team, service, env and actor."""
    queryset = Event.objects.select_related("team", "service", "environment")
    filters = {
        "team": "team__slug",
        "service": "service__slug",
        "environment": "environment__slug",
        "actor": "actor_label",
        "action": "action__startswith",
    }
    applied = {}
    for param, lookup in filters.items():
        value = request.GET.get(param, "").strip()
        if value:
            queryset = queryset.filter(**{lookup: value})
            applied[param] = value
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    return render(request, "controlplane/events.html", {"page": page, "filters": applied})
