"""PostgreSQL restarted in the middle of a rollout: web and worker recover by themselves (the
web's pooled connections are checked as they are handed out, the worker's persistent one
before each task), the rollout carries on where it was, and nothing is left half-written.

The database is a cluster of the test's own (initdb into tmp_path, its own port) holding a
copy of the test database; it is stopped with `pg_ctl -m fast` (open connections cut, as
in a restart or failover) for 8 s. bench/resilience_restart.py measures the 20 s case.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from catalog.models import ApiToken, Instance
from controlplane.tests.resilience import (
    OUTAGE_SECONDS,
    PROCFILE_WORKER,
    OwnPostgres,
    OwnRedis,
    Stack,
    json_of,
    record,
    wait_for,
)
from deployments.tests.conftest import VersionServers, make_route, start_haproxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]



@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped by a failed test
            server.stop()
        server.remove()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def servers() -> Iterator[VersionServers]:
    found = VersionServers()
    yield found
    found.close()


def test_web_and_workers_recover_from_a_postgresql_restart_and_the_rollout_carries_on(
    world: Any,
    own_postgres: OwnPostgres,
    own_redis: OwnRedis,
    servers: VersionServers,
    tmp_path: Path,
) -> None:
    # given checkout (1.0, 1.0 and a 2.0 canary) behind a real HAProxy, and a deploy token
    checkout = [servers.start("1.0"), servers.start("1.0"), servers.start("2.0")]
    proxy = start_haproxy(tmp_path, {"be_checkout": checkout})
    stack: Stack | None = None
    try:
        make_route(world, proxy.connection)
        for server in checkout:
            Instance.objects.create(
                service=world.service, environment=world.production, host="127.0.0.1",
                port=server.port, version=server.version,
            )  # fmt: skip
        _, token = ApiToken.issue(team=world.team, name="ci", scopes=["deploy", "read"])
        # and all of it in a PostgreSQL of the test's own, which Signalbox's processes use
        own_postgres.copy_database(url_of_test_database(), "signalbox")
        stack = Stack(
            tmp_path,
            DATABASE_URL=own_postgres.url("signalbox"),
            REDIS_URL=own_redis.url,
            CELERY_BROKER_URL=own_redis.url,
            SIGNALBOX_ROLLOUT_LEASE_SECONDS="4",
        )
        stack.start_web(SIGNALBOX_DB_POOL_SIZE="4")  # pooled, as the Procfile runs it
        stack.start_worker("worker", *PROCFILE_WORKER)
        stack.start_beat()
        pids = {name: stack.pid(name) for name in ("web", "worker", "beat")}
        api = httpx.Client(
            base_url=stack.web_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        # when a rollout is paused half-way (its pause outlasts the outage)
        started = api.post(
            "/api/v1/rollouts",
            json={
                "service": world.service.slug,
                "environment": world.production.slug,
                "version": "2.0",
                "steps": [
                    {"set_weight": 50},
                    {"pause": {"seconds": int(OUTAGE_SECONDS) + 2}},
                    {"set_weight": 100},
                ],
            },
        )
        assert started.status_code == 201, started.text
        rollout_url = f"/api/v1/rollouts/{started.json()['id']}"
        wait_for(lambda: api.get(rollout_url).json()["applied_weight"] == 50, 30, "50 %")
        # and PostgreSQL restarts, open connections cut
        own_postgres.stop()
        down_at = time.monotonic()
        body = wait_for(lambda: failing_readiness(stack), 5, "/readyz to fail")
        assert body is not None
        time.sleep(max(OUTAGE_SECONDS - (time.monotonic() - down_at), 0))
        own_postgres.start()
        back_at = time.monotonic()

        # then /readyz named the database while it was down
        down = json_of(body)
        assert down["output"] == "down: postgresql"
        assert down["checks"]["redis:responseTime"][0]["status"] == "pass"
        # and the web process serves again by itself, every request, not every other one
        wait_for(lambda: stack.get("/readyz")[0] == 200, 15, "/readyz to pass again")
        recovered_after = time.monotonic() - back_at
        statuses = [api.get(rollout_url).status_code for _ in range(12)]
        assert statuses == [200] * 12
        # and the rollout carried on from its pause to the end, each step once
        final = wait_for(
            lambda: (r := api.get(rollout_url).json())["terminal"] and r, 40, "the rollout to end"
        )
        rollout_after = time.monotonic() - back_at
        assert final["state"] == "succeeded", final["message"]
        assert final["applied_weight"] == 100
        assert proxy.traffic(6) == {"2.0": 6}
        # and nothing was left half-written: no step still "running", none done twice
        steps = step_runs(own_postgres, int(started.json()["id"]))
        assert all(outcome == "done" for _, _, outcome in steps), steps
        assert len({(index, kind) for index, kind, _ in steps}) == len(steps), steps
        # and no process was restarted
        assert {name: stack.pid(name) for name in pids} == pids
        assert all(stack.alive(name) for name in pids)
        assert recovered_after < 15
        record(
            "postgresql_restart",
            outage_seconds=OUTAGE_SECONDS,
            readyz_200_after_s=round(recovered_after, 2),
            rollout_finished_after_s=round(rollout_after, 2),
            steps_lost=3 - len({index for index, _, _ in steps if index < 3}),
            half_written_steps=sum(1 for _, _, outcome in steps if outcome != "done"),
            process_restarts=0,
        )
    finally:
        if stack is not None:
            stack.stop()
        proxy.process.terminate()
        proxy.process.wait(5)


def failing_readiness(stack: Stack) -> bytes | None:
    status, body = stack.get("/readyz")
    return body if status == 503 else None


def url_of_test_database() -> str:
    s = connection.settings_dict
    return f"postgresql://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def step_runs(server: OwnPostgres, rollout_id: int) -> list[tuple[int, str, str]]:
    """(index, kind, outcome) of each step run, read from the own cluster."""
    import psycopg

    with psycopg.connect(server.url("signalbox").replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT index, kind, outcome FROM deployments_rolloutstep"
            " WHERE rollout_id = %s ORDER BY id",
            [rollout_id],
        ).fetchall()
    return [(int(i), str(k), str(o)) for i, k, o in rows]
