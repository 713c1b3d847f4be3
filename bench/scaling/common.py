"""What the scaling benchmark's parts share: the bench database, the machine, percentiles
(bench/common.py)."""

from __future__ import annotations

from bench.common import ROOT, machine, percentile
from bench.common import setup_django as _setup_django

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/signalbox_bench"

__all__ = ["DEFAULT_DATABASE", "ROOT", "machine", "percentile", "setup_django"]


def setup_django() -> None:
    """Django on the bench database (BENCH_DATABASE_URL, else signalbox_bench), migrated."""
    _setup_django(DEFAULT_DATABASE, say=False)
