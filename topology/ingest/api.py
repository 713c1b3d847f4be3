"""`GET /api/v1/trace-ingest`: the trace ingest's counters across all web processes."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.choices import Scope
from catalog.permissions import ScopeRule
from topology.ingest.service import stats


class TraceIngestStatsView(APIView):
    """Spans received and refused, calls paired after waiting, halves that expired unpaired."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ}

    @extend_schema(
        operation_id="trace_ingest_stats",
        summary="Trace ingest counters",
        responses=inline_serializer(
            "TraceIngestStats",
            {
                "spans_received": serializers.IntegerField(),
                "spans_rejected": serializers.IntegerField(),
                "pairs_after_wait": serializers.IntegerField(),
                "unpaired_expired": serializers.IntegerField(),
                "pair_wait_seconds": serializers.IntegerField(),
                "max_request_bytes": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                **stats(),
                "pair_wait_seconds": settings.SIGNALBOX_OTLP_PAIR_WAIT_SECONDS,
                "max_request_bytes": settings.SIGNALBOX_OTLP_MAX_BYTES,
            }
        )
