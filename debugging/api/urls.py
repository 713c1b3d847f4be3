"""Debugging API routes (under /api/v1/)."""

from __future__ import annotations

from django.urls import path

from debugging import delivery
from debugging.api import views

CONFIG = "runtime-config/<slug:service>/<slug:environment>"

urlpatterns = [
    path("config/<slug:service>/<slug:environment>", delivery.watch_config, name="config-watch"),
    path(CONFIG, views.RuntimeConfigView.as_view(), name="runtime-config"),
    path(
        f"{CONFIG}/versions",
        views.RuntimeConfigVersionsView.as_view(),
        name="runtime-config-versions",
    ),
    path(f"{CONFIG}/revert", views.RuntimeConfigRevertView.as_view(), name="runtime-config-revert"),
    path("debug-delivery/<slug:service>", views.DeliveryView.as_view(), name="debug-delivery"),
    path("debug-windows", views.DebugWindowListView.as_view(), name="debug-windows"),
    path("debug-windows/<int:pk>", views.DebugWindowDetailView.as_view(), name="debug-window"),
    path(
        "debug-windows/<int:pk>/close",
        views.DebugWindowCloseView.as_view(),
        name="debug-window-close",
    ),
    path("applied-levels", views.AppliedLevelsView.as_view(), name="applied-levels"),
]
