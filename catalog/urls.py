"""Catalog dashboard pages."""

from __future__ import annotations

from django.urls import path

from catalog import views
from controlplane.dashboard import views as dashboard

app_name = "catalog"
urlpatterns = [
    # The dashboard's team and service pages (every get_absolute_url leads there).
    path("teams/<slug:slug>/", dashboard.team_page, name="team"),
    path("services/<slug:slug>/", dashboard.service_page, name="service"),
    path("services/<slug:slug>/deploy", dashboard.deploy, name="service-deploy"),
    path("instances/<int:pk>/", views.instance_detail, name="instance"),
]
