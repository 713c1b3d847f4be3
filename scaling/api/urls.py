"""Scaling API routes (under /api/v1/)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from scaling.api import handshake, views

router = SimpleRouter(trailing_slash=False)
router.register("scaling/groups", views.GroupViewSet, basename="scaling-group")

urlpatterns = [
    *router.urls,
    path("metrics", views.MetricsView.as_view(), name="metrics-report"),
    # The scale-in handshake (beside the catalog's instances/<id>, which has no such action).
    path(
        "instances/<int:pk>/lifecycle",
        handshake.LifecycleView.as_view(),
        name="instance-lifecycle",
    ),
    path(
        "instances/<int:pk>/ready-to-terminate",
        handshake.ReadyView.as_view(),
        name="instance-ready-to-terminate",
    ),
    path(
        "instances/<int:pk>/lifecycle-heartbeat",
        handshake.HeartbeatView.as_view(),
        name="instance-lifecycle-heartbeat",
    ),
    path(
        "instances/<int:pk>/protection",
        handshake.ProtectionView.as_view(),
        name="instance-protection",
    ),
]
