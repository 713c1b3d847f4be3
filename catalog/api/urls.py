"""Catalog API routes under /api/v1/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from catalog.api import views

router = SimpleRouter(trailing_slash=False)
router.register("teams", views.TeamViewSet, basename="team")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("environments", views.EnvironmentViewSet, basename="environment")
router.register(
    "external-dependencies", views.ExternalDependencyViewSet, basename="external-dependency"
)
router.register("services", views.ServiceViewSet, basename="service")
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("invitations", views.InvitationViewSet, basename="invitation")
urlpatterns = router.urls
