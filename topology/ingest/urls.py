"""The OTLP/HTTP path, at the root where OTLP exporters post: POST /v1/traces."""

from __future__ import annotations

from django.urls import path

from topology.ingest.views import traces

urlpatterns = [path("v1/traces", traces, name="otlp-traces")]
