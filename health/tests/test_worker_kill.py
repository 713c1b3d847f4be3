"""A real Celery worker killed with SIGKILL mid-batch: its rows are probed again after the lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import Instance
from health import scheduler, services
from health.choices import CheckStatus
from health.models import CheckSpec, InstanceCheck
from health.tests.conftest import Instances

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_worker_leaves_a_lease_that_expires_into_a_new_claim(
    world: Any, instances: Instances, tmp_path: Path
) -> None:
    from controlplane.celery import app
    from health.tasks import run_batch

    # given a check whose probe takes 3 s, claimed by the scheduler
    instances.delay = 3.0
    instance = Instance.objects.create(
        service=world.service, environment=world.production, host="127.0.0.1", port=instances.port
    )
    services.ensure_checks(instance)
    CheckSpec.objects.filter(service=world.service).update(timeout_seconds=5)
    InstanceCheck.objects.update(next_due_at=timezone.now())
    claim = scheduler.claim_due()
    assert len(claim.ids) == 1
    app.control.purge()
    # and a real worker (its own process, on the test database) running the batch
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", "probes",
         "--pool=solo", "-n", f"killtest-{os.getpid()}@%h", "--without-mingle",
         "--without-gossip", "--without-heartbeat", "-l", "info"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert claim.lease_until is not None
        run_batch.apply_async(args=(claim.ids, claim.lease_until.isoformat()), queue="probes")
        wait_for(lambda: instances.hits >= 1, 30, "the worker to start probing\n" + log.read_text())
        # when the worker is killed mid-batch
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
        app.control.purge()
    # then the row is still leased and nothing was written
    check = InstanceCheck.objects.get(pk=claim.ids[0])
    assert check.lease_until is not None and check.last_checked_at is None
    assert scheduler.claim_due().ids == []
    # when the lease has run out (the clock moved instead of waiting 71 s)
    later = timezone.now() + timedelta(seconds=scheduler.LEASE_SECONDS + 1)
    again = scheduler.claim_due(now=later)
    # then the check is claimed again and its probe lands
    assert again.ids == claim.ids
    instances.delay = 0
    assert scheduler.run_batch(again.ids, again.lease_until).written == 1
    # and the killed worker's message, if redelivered, finds the rows no longer its own
    assert scheduler.run_batch(claim.ids, claim.lease_until).probed == 0
    check = InstanceCheck.objects.get(pk=check.pk)  # read afresh: mypy keeps the old narrowing
    assert (check.status, check.lease_until) == (CheckStatus.PASS, None)
