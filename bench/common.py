"""What the benchmarks share: their own database (created and migrated if missing, never the
development one), the machine they ran on, percentiles."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_django(default_database: str, *, flush: bool = False, say: bool = True) -> None:
    """Django on BENCH_DATABASE_URL (else `default_database`), created if missing, migrated;
    `flush` empties it first (a bench that seeds from nothing)."""
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", default_database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ["SIGNALBOX_EVENT_CONSUMERS"] = ""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import psycopg
    from django.core.exceptions import ImproperlyConfigured

    from controlplane.env import database_from_url

    db = database_from_url(os.environ["DATABASE_URL"])
    try:
        conn = psycopg.connect(
            host=str(db["HOST"]), port=str(db["PORT"] or 5432), user=str(db["USER"]),
            password=str(db["PASSWORD"]), dbname="postgres", autocommit=True,
        )  # fmt: skip
    except psycopg.OperationalError as exc:
        raise ImproperlyConfigured(f"PostgreSQL is not reachable: {exc}") from exc
    with conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone():
            if say:
                print(f"== creating database {db['NAME']}", flush=True)
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    import django

    django.setup()
    from django.core.management import call_command

    if say:
        print("== migrating", flush=True)
    call_command("migrate", verbosity=0)
    if flush:
        call_command("flush", interactive=False, verbosity=0)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def machine() -> str:
    """One line: CPU, cores, OS, Python and the load average now."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average {load}"
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
