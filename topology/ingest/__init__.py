"""OTLP/HTTP trace ingest: spans into per-minute edges between services (docs/tracing.md)."""
