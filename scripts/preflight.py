"""Before `make run`: PostgreSQL and Redis answer, and the database exists (created if not)."""

from __future__ import annotations

import os
import sys

import psycopg
import redis
from psycopg import sql

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    import django

    django.setup()
    from django.conf import settings

    from controlplane import redis as redis_clients

    db = settings.DATABASES["default"]
    conninfo = psycopg.conninfo.make_conninfo(
        dbname="postgres",
        host=str(db["HOST"] or ""),
        port=str(db["PORT"] or ""),
        user=str(db["USER"] or ""),
        password=str(db["PASSWORD"] or ""),
        connect_timeout="3",
    )
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL is not reachable at {db['HOST']}:{db['PORT'] or 5432}: {exc}")
        print("Start it (e.g. `pg_ctlcluster 15 main start`) or set DATABASE_URL.")
        return 1
    with conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone()
        if not exists:
            print(f"creating database {db['NAME']}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(db["NAME"]))))
    try:
        redis_clients.client(timeout=3).ping()
    except redis.RedisError as exc:
        print(f"Redis is not reachable at {settings.REDIS_URL}: {exc}")
        print("Start it (e.g. `redis-server --daemonize yes`) or set REDIS_URL.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
