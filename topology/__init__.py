"""What depends on what: OTLP trace ingest into per-minute edge aggregates, the dependency map
(declared dependencies, circuits, probes and traces merged) and its blast radius."""
