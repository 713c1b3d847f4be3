"""Health API routes under /api/v1/: reads, history, specs, heartbeats, maintenance, pings."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from health.api import views

router = SimpleRouter(trailing_slash=False)
router.register("health/services", views.ServiceHealthViewSet, basename="health-service")
router.register("health/instances", views.InstanceHealthViewSet, basename="health-instance")
router.register("health/transitions", views.TransitionViewSet, basename="health-transition")
router.register("health/checks", views.CheckSpecViewSet, basename="health-check")
router.register("health/heartbeats", views.HeartbeatViewSet, basename="heartbeat")
router.register("health/maintenance", views.MaintenanceWindowViewSet, basename="maintenance")

urlpatterns = [
    path(
        "health/services/<slug:slug>",
        views.ServiceHealthDetail.as_view(),
        name="health-service-detail",
    ),
    path("health/teams", views.TeamHealthList.as_view(), name="health-team-list"),
    path(
        "health/environments", views.EnvironmentHealthList.as_view(), name="health-environment-list"
    ),
    path("health/history", views.HistoryView.as_view(), name="health-history"),
    path("heartbeats/<uuid:key>", views.PingView.as_view(), name="heartbeat-ping"),
    path(
        "heartbeats/<uuid:key>/start",
        views.PingStartView.as_view(),
        name="heartbeat-ping-start",
    ),
    path(
        "heartbeats/<uuid:key>/fail",
        views.PingFailView.as_view(),
        name="heartbeat-ping-fail",
    ),
    path(
        "heartbeats/<uuid:key>/log",
        views.PingLogView.as_view(),
        name="heartbeat-ping-log",
    ),
    path(
        "heartbeats/<uuid:key>/<int:exit_code>",
        views.PingExitCodeView.as_view(),
        name="heartbeat-ping-exit",
    ),
    *router.urls,
]
