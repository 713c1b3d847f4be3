"""Deployments dashboard pages under /deployments/."""

from __future__ import annotations

from django.urls import path

from deployments import views

app_name = "deployments"
urlpatterns = [
    path("", views.board, name="board"),
    path("freezes/", views.freezes, name="freezes"),
    path("freezes/<slug:kind>/new", views.freeze_create, name="freeze-create"),
    path("freezes/<slug:kind>/<int:pk>/end", views.freeze_end, name="freeze-end"),
    path("rollouts/<int:pk>/", views.rollout_detail, name="rollout"),
    path("rollouts/<int:pk>/actions", views.rollout_actions, name="rollout-actions"),
    path("rollouts/<int:pk>/<slug:action>", views.rollout_action, name="rollout-action"),
]
