"""Catalog dashboard pages: an instance (team and service pages are the dashboard's)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from catalog.models import Instance


@login_required
def instance_detail(request: HttpRequest, pk: int) -> HttpResponse:
    instance = get_object_or_404(
        Instance.objects.select_related("service", "service__team", "environment"), pk=pk
    )
    return render(request, "catalog/instance.html", {"instance": instance})
