"""Topology's rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from catalog.tests.matrix import Row, read

PERMISSION_MATRIX = [
    # Trace ingest counters (topology/ingest/api.py): every reader.
    Row("trace-ingest-stats", "GET", read()),
]
PERMISSION_MATRIX += [
    # The dependency map (topology/api/views.py): every reader.
    Row("topology-graph", "GET", read()),
    Row("topology-blast-radius", "GET", read(), query="service=checkout"),
]
