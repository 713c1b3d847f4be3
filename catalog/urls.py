"""Catalog dashboard pages."""

from __future__ import annotations

from django.urls import path

from catalog import views

app_name = "catalog"
urlpatterns = [
    path("teams/<slug:slug>/", views.team_detail, name="team"),
    path("services/<slug:slug>/", views.service_detail, name="service"),
    path("instances/<int:pk>/", views.instance_detail, name="instance"),
]
