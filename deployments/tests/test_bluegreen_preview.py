"""Blue/green in the demo, end to end: the green side gets real requests on its preview
frontend (from the fleet's traffic generator) while users stay on blue; a bad green is rolled
back before any user request reaches it, a good one is cut over."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from catalog.models import Instance
from deployments import demo
from deployments.choices import RolloutState, StepKind, Verdict
from deployments.drivers import driver_for
from deployments.drivers.haproxy import HAProxyDriver, parse_show_stat
from deployments.models import DeploySettings, Measurement, Rollout, TrafficRoute
from deployments.tests.conftest import run_cli
from deployments.tests.test_demo import (
    BAD_VERSION,
    STABLE_VERSION,
    fleet_plan,
    manage,
    seeded_demo,
)

__all__ = ["fleet_plan", "seeded_demo"]  # the demo's fixtures, shared with test_demo

GOOD_VERSION = "1.6.0"
HEALTH_SECONDS = 30  # the new instance's first health check: within one 10 s interval
WAIT_SECONDS = "120"  # the CLI's --timeout: far beyond what either rollout takes


class Users:
    """Business calls to checkout's (user) frontend in a thread, noting when each answered
    and which version: what users saw while the rollout ran."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.url = f"{checkout_frontend(plan)}/api/work"
        self.answers: list[tuple[datetime, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._call, daemon=True)

    @property
    def seen(self) -> Counter[str]:
        return Counter(version for _, version in self.answers)

    def _call(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = client.get(self.url)
                    version = answer.json().get("version") or str(answer.status_code)
                    self.answers.append((timezone.now(), version))
                time.sleep(0.02)

    def __enter__(self) -> Users:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def checkout_frontend(plan: dict[str, Any]) -> str:
    port = next(f.port for f in demo.frontends(plan) if f.service == "checkout")
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def probing() -> Iterator[None]:
    """Health's scheduler in a thread, as the beat and a worker run it: the rollouts' health
    metric reads what it finds."""
    from health import scheduler
    from health.probes.runtime import reset_runtime

    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.is_set():
                claim = scheduler.claim_due()
                if claim.ids:
                    scheduler.run_batch(claim.ids, claim.lease_until)
                stop.wait(0.2)
        finally:
            reset_runtime()  # the probes' connection pool, closed in the loop that opened it
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


@pytest.fixture
def demo_with_previews(
    seeded_demo: dict[str, Any], fleet_plan: Path, live_server: Any
) -> dict[str, Any]:
    """The demo as `make run` leaves it, the fleet sending its calls through HAProxy and its
    preview traffic to the preview frontends; a deploy token for the CLI."""
    call_command(
        "seed_deployments", "--fleet", str(fleet_plan), "--route-fleet", stdout=io.StringIO()
    )
    # Blue/green keeps blue for its rollback window after the cut-over; not under test here.
    DeploySettings.objects.filter(service__slug="checkout").update(rollback_window_seconds=1)
    token = manage(
        "issue_token", "--team", "commerce", "--scopes", "read,deploy", "--name", "ci"
    ).strip()
    return {
        "plan": seeded_demo,
        "fleet": fleet_plan,
        "ci": {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": token},
    }


def start_green(fleet: Path, version: str, *extra: str) -> Instance:
    """demo_canary, as documented; then wait for the new instance's first health result, as a
    pipeline waits for a deploy to be ready before it starts the rollout."""
    from health.services import instance_status

    manage(
        "demo_canary", "--service", "checkout", "--version", version, "--fleet", str(fleet), *extra
    )
    instance = Instance.objects.get(
        service__slug="checkout", environment__slug=demo.DEMO_ENVIRONMENT, version=version
    )
    deadline = time.monotonic() + HEALTH_SECONDS
    while instance_status([instance.pk]).get(instance.pk, "unknown") == "unknown":
        assert time.monotonic() < deadline, "the new instance was never health-checked"
        time.sleep(0.2)
    return instance


def user_responses(address: str) -> int:
    """What HAProxy's user-facing backend (not the preview) sent this server."""
    driver = driver_for(TrafficRoute.objects.get(service__slug="checkout"))
    assert isinstance(driver, HAProxyDriver)
    text = driver.api.execute("show stat -1 4 -1")
    rows = [r for r in parse_show_stat(text, "be_checkout") if r.address == address]
    return sum(r.responses for r in rows)


def preview_calls(plan: dict[str, Any]) -> dict[str, Any]:
    control = plan["control"]
    traffic = httpx.get(f"http://{control['host']}:{control['port']}/fleet/traffic").json()
    return next(p for p in traffic["previews"] if p["service"] == "checkout")


def blue_green(ci: dict[str, str], version: str) -> tuple[int, str, str]:
    return run_cli(
        ci, "rollout", "start", "--service", "checkout", "--env", "production",
        "--version", version, "--strategy", "blue_green",
        "--wait", "--poll", "0.5", "--timeout", WAIT_SECONDS,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_bad_green_side_is_rolled_back_before_any_user_reaches_it(
    demo_with_previews: dict[str, Any], reconciling: None, probing: None
) -> None:
    # given a bad green side failing half its requests, next to blue
    green = start_green(demo_with_previews["fleet"], BAD_VERSION, "--error-rate", "50")
    # when CI starts a blue/green rollout of it and waits, while users keep shopping
    with Users(demo_with_previews["plan"]) as users:
        code, out, err = blue_green(demo_with_previews["ci"], BAD_VERSION)
    # then the analysis read the preview's requests, failed, and the CLI says so (exit 1)
    assert code == 1, (out, err)
    rollout = Rollout.objects.get(to_version=BAD_VERSION)
    assert rollout.state == RolloutState.ROLLED_BACK
    assert [next(iter(s)) for s in rollout.steps][:2] == [StepKind.PREVIEW, StepKind.ANALYSIS]
    assert rollout.message.startswith("analysis failed: errors: 5xx rate"), rollout.message
    failed = Measurement.objects.get(rollout=rollout, metric="errors", verdict=Verdict.FAIL)
    assert failed.detail["canary"]["responses"] >= 5
    assert preview_calls(demo_with_previews["plan"])["failed"] > 0
    # and no user request ever reached green: users saw only blue, and HAProxy agrees
    assert set(users.seen) == {STABLE_VERSION}, users.seen
    assert sum(users.seen.values()) > 50
    assert user_responses(f"{green.host}:{green.port}") == 0
    assert rollout.step_runs.filter(kind=StepKind.SET_WEIGHT).count() == 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_good_green_side_passes_on_the_preview_and_is_cut_over(
    demo_with_previews: dict[str, Any], reconciling: None, probing: None
) -> None:
    # given a good green side next to blue
    green = start_green(demo_with_previews["fleet"], GOOD_VERSION)
    # when CI starts a blue/green rollout of it and waits, while users keep shopping
    with Users(demo_with_previews["plan"]) as users:
        code, out, err = blue_green(demo_with_previews["ci"], GOOD_VERSION)
        time.sleep(1)
    # then it passed on the preview's requests and cut over: the CLI exits 0
    assert code == 0, (out, err)
    rollout = Rollout.objects.get(to_version=GOOD_VERSION)
    assert rollout.state == RolloutState.SUCCEEDED
    passed = Measurement.objects.filter(rollout=rollout, metric="errors", verdict=Verdict.PASS)
    assert passed.count() == 2
    assert all(m.detail["canary"]["responses"] >= 5 for m in passed)
    assert preview_calls(demo_with_previews["plan"])["succeeded"] >= 10
    # and users met green only once the analysis had passed and the cut-over began
    cut_over = rollout.step_runs.get(kind=StepKind.SET_WEIGHT).started_at
    assert max(m.measured_at for m in passed) <= cut_over
    first_green = min(at for at, version in users.answers if version == GOOD_VERSION)
    assert first_green >= cut_over
    assert users.seen[STABLE_VERSION] > 0 and user_responses(f"{green.host}:{green.port}") > 0
    # and every user now gets green
    with httpx.Client(timeout=5) as client:
        url = f"{checkout_frontend(demo_with_previews['plan'])}/version"
        assert {client.get(url).json()["version"] for _ in range(10)} == {GOOD_VERSION}


@pytest.mark.django_db
def test_asking_for_blue_green_gets_its_steps_when_the_service_has_canary_ones(
    world: Any, routed: Any
) -> None:
    from deployments.tests.conftest import start

    # given a service whose deploy settings are canary steps (as the demo seeds them)
    DeploySettings.objects.create(service=world.service, steps=demo.DEMO_STEPS)
    # when a blue/green rollout is asked for, naming no steps
    rollout = start(world, strategy="blue_green")
    # then it is a blue/green: preview, analysis, cut-over, rollback window, drain
    assert [next(iter(s)) for s in rollout.steps] == [
        StepKind.PREVIEW,
        StepKind.ANALYSIS,
        StepKind.SET_WEIGHT,
        StepKind.PAUSE,
        StepKind.DRAIN_STABLE,
    ]
    # and a canary still gets the service's own steps
    Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.ABORTED)
    assert start(world).steps == demo.DEMO_STEPS
