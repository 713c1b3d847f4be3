"""Catalog dashboard pages: a team, a service, an instance."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from catalog.models import Instance, Service, Team


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = get_object_or_404(Team, slug=slug)
    services = team.services.all()
    return render(request, "catalog/team.html", {"team": team, "services": services})


@login_required
def service_detail(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service.objects.select_related("team"), slug=slug)
    instances = service.instances.select_related("environment")
    return render(request, "catalog/service.html", {"service": service, "instances": instances})


@login_required
def instance_detail(request: HttpRequest, pk: int) -> HttpResponse:
    instance = get_object_or_404(
        Instance.objects.select_related("service", "service__team", "environment"), pk=pk
    )
    return render(request, "catalog/instance.html", {"instance": instance})
