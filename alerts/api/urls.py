"""Alerts API routes under /api/v1/alerts/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from alerts.api import views

router = SimpleRouter(trailing_slash=False)
router.register("alerts/incidents", views.IncidentViewSet, basename="alert-incident")
router.register("alerts/silences", views.SilenceViewSet, basename="alert-silence")
router.register("alerts/rules", views.RuleViewSet, basename="alert-rule")
router.register("alerts/channels", views.ChannelViewSet, basename="alert-channel")
router.register("alerts/routes", views.RouteViewSet, basename="alert-route")
router.register("alerts/subscriptions", views.SubscriptionViewSet, basename="alert-subscription")
urlpatterns = router.urls
