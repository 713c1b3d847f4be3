"""Topology API routes (under /api/v1/)."""

from __future__ import annotations

from django.urls import path

from topology.api import views

urlpatterns = [
    path("topology/graph", views.GraphView.as_view(), name="topology-graph"),
    path("topology/blast-radius", views.BlastRadiusView.as_view(), name="topology-blast-radius"),
]
