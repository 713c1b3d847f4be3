"""Top-level URLs: dashboard pages, API v1, schema and docs, the control plane's health."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from alerts import views as alerts_views
from controlplane import metrics, probes
from controlplane.api import NoSuchEndpoint

api_v1 = [
    path("", include("catalog.api.urls")),
    path("", include("deployments.api.urls")),
    path("", include("health.api.urls")),
    path("", include("catalog.api.io_urls")),
    path("", include("alerts.api.urls")),
    path("", include("circuits.api.urls")),
    path("", include("scaling.api.urls")),
    path("", include("debugging.api.urls")),
    path("", include("topology.api.urls")),
    path("", include("topology.ingest.api_urls")),
    path("", include("statuspage.api.urls")),
]

urlpatterns = [
    path("", include("identity.urls")),  # login, logout, password reset, SSO
    path("admin/", admin.site.urls),
    path("catalog/", include("catalog.urls")),
    path("deployments/", include("deployments.urls")),
    path("health/", include("health.urls")),
    path("alerts/", include("alerts.urls")),
    path("circuits/", include("circuits.urls")),
    path("scaling/", include("scaling.urls")),
    path("debugging/", include("debugging.urls")),
    path("topology/", include("topology.urls")),
    path("", include("statuspage.urls")),  # public: /status/<slug>/, /badges/<token>.svg
    path("", include("dashboard.urls")),
    path("slack/commands", alerts_views.slack_command, name="slack-commands"),
    path("slack/interactions", alerts_views.slack_interaction, name="slack-interactions"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Last under /api/: whatever the patterns above did not match (docs/api.md, URLs).
    re_path(r"^api(?:/|$)", NoSuchEndpoint.as_view(), name="api-no-such-endpoint"),
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("", include("topology.ingest.urls")),  # POST /v1/traces (OTLP/HTTP, docs/tracing.md)
]
