"""The trace ingest's API route (under /api/v1/)."""

from __future__ import annotations

from django.urls import path

from topology.ingest.api import TraceIngestStatsView

urlpatterns = [
    path("trace-ingest", TraceIngestStatsView.as_view(), name="trace-ingest-stats"),
]
