"""Dependency map benchmark: `python -m bench.dependency_map` (see __main__.py)."""
