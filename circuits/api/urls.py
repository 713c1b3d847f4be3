"""Circuits API routes under /api/v1/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from circuits.api import views

router = SimpleRouter(trailing_slash=False)
router.register("circuits/overrides", views.OverrideViewSet, basename="circuit-override")
router.register("circuits/scrape-targets", views.ScrapeTargetViewSet, basename="scrape-target")
router.register("circuits", views.CircuitViewSet, basename="circuit")

urlpatterns = [
    path("circuits/reports", views.ReportView.as_view(), name="circuit-reports"),
    path("dependencies", views.DependencyView.as_view(), name="dependencies"),
    *router.urls,
]
