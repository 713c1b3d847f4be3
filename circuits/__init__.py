"""Circuits: every circuit breaker's state, ingest, aggregation and overrides."""
