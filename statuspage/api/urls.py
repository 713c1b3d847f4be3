"""Status page API routes under /api/v1/status/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from statuspage.api import views

router = SimpleRouter(trailing_slash=False)
router.register("status/pages", views.StatusPageViewSet, basename="status-page")
router.register("status/incidents", views.PublicIncidentViewSet, basename="public-incident")
router.register("status/badges", views.BadgeViewSet, basename="badge")

urlpatterns = router.urls
