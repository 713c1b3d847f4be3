"""Topology's rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from catalog.tests.matrix import Row, read

PERMISSION_MATRIX = [
    # Trace ingest counters (topology/ingest/api.py): every reader.
    Row("trace-ingest-stats", "GET", read()),
]
