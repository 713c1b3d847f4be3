"""Topology pages under /topology/."""

from __future__ import annotations

from django.urls import path

from topology import views

app_name = "topology"
urlpatterns = [
    path("", views.dependency_map, name="map"),
    path("blast/<str:kind>/<str:name>/", views.blast, name="blast"),
    path("trace/<slug:slug>/", views.trace, name="trace"),
]
