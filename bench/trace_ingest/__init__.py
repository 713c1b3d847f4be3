"""Trace ingest benchmark: `python -m bench.trace_ingest` (see __main__.py)."""
