"""Deployments API routes under /api/v1/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from deployments.api import views
from deployments.choices import Action

router = SimpleRouter(trailing_slash=False)
router.register("freeze-windows", views.FreezeWindowViewSet, basename="freeze-window")
router.register(
    "recurring-freeze-windows",
    views.RecurringFreezeWindowViewSet,
    basename="recurring-freeze-window",
)

urlpatterns = [
    path("rollouts", views.RolloutList.as_view(), name="rollout-list"),
    path("rollouts/<int:pk>", views.RolloutDetail.as_view(), name="rollout-detail"),
    *[
        path(
            f"rollouts/<int:pk>/{action.value}",
            views.action_view(action),
            name=f"rollout-{action.value}",
        )
        for action in Action
    ],
]
urlpatterns += router.urls
