"""Circuits ingest benchmark: `python -m bench.circuits_ingest` (see __main__.py)."""
