"""What the scaling benchmark's parts share: the bench database, the machine, percentiles."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/signalbox_bench"


def setup_django() -> None:
    """Django on the bench database (BENCH_DATABASE_URL, else signalbox_bench), migrated."""
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ["SIGNALBOX_EVENT_CONSUMERS"] = ""
    sys.path.insert(0, str(ROOT))
    import psycopg
    from django.core.exceptions import ImproperlyConfigured

    from controlplane.env import database_from_url

    db = database_from_url(os.environ["DATABASE_URL"])
    try:
        conn = psycopg.connect(
            host=str(db["HOST"]),
            port=str(db["PORT"] or 5432),
            user=str(db["USER"]),
            password=str(db["PASSWORD"]),
            dbname="postgres",
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        raise ImproperlyConfigured(f"PostgreSQL is not reachable: {exc}") from exc
    with conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone():
            print(f"== creating database {db['NAME']}", flush=True)
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average {load}"
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
