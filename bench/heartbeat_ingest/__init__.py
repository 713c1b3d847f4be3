"""Heartbeat ingest benchmark: `python -m bench.heartbeat_ingest` (see __main__.py)."""
