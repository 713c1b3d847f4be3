"""Health throughput benchmark: `python -m bench.health_throughput` (see __main__.py)."""
