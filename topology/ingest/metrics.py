"""Trace ingest's counters on /metrics (per web process; Prometheus sums them)."""

from __future__ import annotations

from prometheus_client import Counter

from controlplane.metrics import REGISTRY

SPANS = Counter(
    "signalbox_otlp_spans_total",
    "Spans received on POST /v1/traces, by outcome (accepted, rejected for the token).",
    ["outcome"],
    registry=REGISTRY,
)
PAIRED = Counter(
    "signalbox_otlp_calls_paired_total",
    "Client and server (or producer and consumer) spans paired into one call.",
    registry=REGISTRY,
)
EXPIRED = Counter(
    "signalbox_otlp_unpaired_spans_expired_total",
    "Halves of a call whose other side did not arrive within the pair wait.",
    registry=REGISTRY,
)
VIRTUAL = Counter(
    "signalbox_otlp_virtual_edges_total",
    "Expired client spans that still made an edge (peer.service, server.address, db.system).",
    registry=REGISTRY,
)
REQUESTS = Counter(
    "signalbox_otlp_requests_total",
    "OTLP export requests by HTTP status.",
    ["status"],
    registry=REGISTRY,
)
