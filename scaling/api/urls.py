"""Scaling API routes (under /api/v1/)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from scaling.api import views

router = SimpleRouter(trailing_slash=False)
router.register("scaling/groups", views.GroupViewSet, basename="scaling-group")

urlpatterns = [
    *router.urls,
    path("metrics", views.MetricsView.as_view(), name="metrics-report"),
]
