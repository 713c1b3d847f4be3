"""Issue 17 item 9, end to end: a new inventory whose health checks pass but whose API fails
60 % of its calls, rolled out at 50 % with only the `dependents` analysis, is rolled back on
what its callers see; a good version with the same setup goes through.

Real parts: the demo fleet (fleet/demo.yaml as laid out, in a thread of this process on
free ports) seeded as `make run` seeds it (seed_demo, seed_deployments), its
production calls routed through the generated config on a real HAProxy; checkout's and
search's circuits scraped from their /metrics pages by the real scraper; the reconciler
driving the rollout. Nothing is mocked. The breakers are the demo's (a 10 s window, opening
at 50 % failures), so the callers' circuits stay closed at 30 %: the failure the old provider
missed. A reading every 12 s sees only calls made at the step's weight.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random as rng
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command

from catalog.choices import Role
from catalog.models import Environment, Instance, Membership, Service
from catalog.permissions import Access
from circuits.ingest import scrape as scraping
from circuits.models import Circuit, ScrapeTarget
from deployments import demo
from deployments.actions import start_rollout
from deployments.choices import TERMINAL_STATES, RolloutState, Verdict
from deployments.models import Rollout
from deployments.tests.conftest import drive, run_haproxy
from deployments.tests.test_demo import free_ports
from fleet.breaker import BreakerConfig
from fleet.plan import build_plan
from fleet.runtime import Fleet

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEMO = Path(settings.BASE_DIR) / "fleet" / "demo.yaml"
BREAKERS = BreakerConfig()  # what `python -m fleet run` uses
STABLE = "2.0.3"  # inventory in fleet/demo.yaml
NEW = "2.1.0"
SCRAPE_SECONDS = 3  # each scrape counts the calls since the one before: ~45 per caller
SHOPPING_RPS = 15  # calls to checkout, and as many to search, through their HAProxy frontends
METRIC = {"name": "callers", "provider": "dependents", "interval": 12, "success_count": 2}
STEPS: list[dict[str, Any]] = [{"set_weight": 50}, {"analysis": {}}, {"set_weight": 100}]
FAILURE = re.compile(
    r"(checkout|search) → inventory failures (\d+(?:\.\d)?) % "
    r"(vs 0 % before|\(no figure from before\)) \(max 5 %, \+5 pp\)"
)


class RunningFleet:
    """The demo fleet in a background event loop, its plan (with real ports) in a file."""

    def __init__(self, plan_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        plan = build_plan(DEMO, base_port=0, control_port=0)
        self.fleet = Fleet(
            plan, state_path=plan_path, breaker_config=BREAKERS, shutdown_timeout=0.5
        )
        self.run(self.fleet.start())

    def run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(30)

    def call(self, function: Callable[[], Any]) -> Any:
        """A plain fleet method, run on the fleet's loop (it is not thread-safe)."""

        async def wrapped() -> Any:
            return function()

        return self.run(wrapped())

    def stop(self) -> None:
        self.run(self.fleet.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Background:
    """`step` every `every` seconds in a thread until stopped: the scraper as a worker runs
    it, or a shopper (`random`: at random moments, `every` apart on average, as people come;
    a steady beat would fall into step with HAProxy's round robin and hand one caller all
    of the new version's share)."""

    def __init__(
        self, step: Callable[[], None], every: float, *, db: bool = False, random: bool = False
    ) -> None:
        self.step, self.every, self.db, self.random = step, every, db, random
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from django.db import connection

        due = time.monotonic()
        try:
            while not self.stop.is_set():
                try:
                    self.step()
                except Exception as exc:  # kept for the test to show, never swallowed
                    self.errors.append(exc)
                gap = rng.expovariate(1 / self.every) if self.random else self.every
                due = max(due + gap, time.monotonic() - self.every)
                self.stop.wait(max(0.0, due - time.monotonic()))
        finally:
            if self.db:
                connection.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


@dataclass
class Shop:
    fleet: RunningFleet
    frontends: dict[str, int]
    inventory: Service
    production: Environment

    def start_new_inventory(self, faults: dict[str, Any]) -> Instance:
        """A new inventory instance in the fleet, registered, with `faults` injected."""
        started = self.fleet.run(self.fleet.fleet.add_instance("inventory", "production", NEW))
        if faults:
            self.fleet.run(self.fleet.fleet.set_faults(started.id, faults))
        return Instance.objects.create(
            service=self.inventory,
            environment=self.production,
            host=started.spec.host,
            port=started.spec.port,
            version=NEW,
        )

    def roll_out(self) -> Rollout:
        """Inventory to the new version at 50 % with only the dependents analysis, to the end."""
        deployer = Membership.objects.get(team=self.inventory.team, role=Role.DEPLOYER).user
        rollout, _ = start_rollout(
            access=Access(user=deployer),
            service=self.inventory,
            environment=self.production,
            version=NEW,
            steps=STEPS,
            analysis=[METRIC],
        )
        done: Rollout = drive(rollout.pk, lambda r: r.state in TERMINAL_STATES, timeout=120)
        return done

    def versions(self, requests: int) -> set[str]:
        url = f"http://127.0.0.1:{self.frontends['inventory']}/version"
        with httpx.Client(timeout=5) as client:
            return {client.get(url).json()["version"] for _ in range(requests)}


def shopper(port: int) -> Callable[[], None]:
    """Business calls to one service's frontend (checkout and search each call inventory)."""
    client = httpx.Client(timeout=5)

    def shop() -> None:
        with contextlib.suppress(httpx.HTTPError):
            client.get(f"http://127.0.0.1:{port}/api/work")

    return shop


def scrape_due() -> None:
    ids = scraping.claim_due()
    if ids:
        scraping.scrape(ids)


def wait_for_figures(inventory: Service, production: Environment, timeout: float = 30) -> None:
    """Until checkout's and search's circuits towards inventory report a failure rate."""
    deadline = time.monotonic() + timeout
    while True:
        rated = set(
            Circuit.objects.filter(
                protects_service=inventory, environment=production, failure_rate__isnull=False
            ).values_list("service__slug", flat=True)
        )
        if {"checkout", "search"} <= rated:
            return
        assert time.monotonic() < deadline, f"only {sorted(rated)} report calls to inventory"
        time.sleep(0.2)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    plan_path = tmp_path / "fleet.json"
    running = RunningFleet(plan_path)
    background: list[Background] = []
    router = None
    try:
        # the rest of `make run`: the catalog, the HAProxy config and router, the routes
        plan = demo.load_plan(plan_path)
        monkeypatch.setattr(demo, "FRONTEND_BASE_PORT", free_ports(len(demo.frontends(plan))))
        monkeypatch.setenv("SIGNALBOX_DEMO_PASSWORD", "pw-demo")
        config = tmp_path / "haproxy.cfg"
        call_command("seed_demo", "--fleet", str(plan_path), stdout=io.StringIO())
        call_command(
            "seed_deployments", "--fleet", str(plan_path), "--config", str(config),
            stdout=io.StringIO(),
        )  # fmt: skip
        router = run_haproxy(config, str(tmp_path / "haproxy.sock"))
        frontends = {f.service: f.port for f in demo.frontends(plan)}
        for service, port in frontends.items():
            running.call(
                partial(running.fleet.set_route, service, "production", f"http://127.0.0.1:{port}")
            )
        # circuits scraped from production instances' /metrics, every SCRAPE_SECONDS
        scraping.sync_all()
        ScrapeTarget.objects.update(interval_seconds=SCRAPE_SECONDS)
        ScrapeTarget.objects.exclude(environment__slug="production").update(enabled=False)
        background.append(Background(scrape_due, 0.2, db=True))
        for caller in ("checkout", "search"):
            shop = shopper(frontends[caller])
            background.append(Background(shop, 1 / SHOPPING_RPS, random=True))
        inventory = Service.objects.get(slug="inventory")
        production = Environment.objects.get(slug="production")
        wait_for_figures(inventory, production)
        yield Shop(running, frontends, inventory, production)
        errors = [e for b in background for e in b.errors]
        assert not errors, errors
    finally:
        for loop in background:
            loop.close()
        if router is not None:
            router.terminate()
            router.wait(5)
        running.stop()


def test_a_version_failing_its_callers_calls_is_rolled_back_naming_the_caller(
    shop: Shop,
) -> None:
    # given a new inventory answering 60 % of its API calls with 500, while its own health
    # endpoint still answers 200 (its health checks pass)
    new = shop.start_new_inventory({"error_rate": 60})
    health = httpx.get(f"http://{new.host}:{new.port}/health", timeout=5)
    assert health.status_code == 200, health.text
    # when it is rolled out at 50 % with only the dependents analysis
    rollout = shop.roll_out()
    # then it is rolled back on what checkout (or search) saw of inventory, with the figure
    assert rollout.state == RolloutState.ROLLED_BACK, rollout.message
    assert rollout.message.startswith("analysis failed: callers: "), rollout.message
    found = FAILURE.search(rollout.message)
    assert found, rollout.message
    # (half the calls on a version failing 60 % of them: about 30 %)
    assert 10 <= float(found.group(2)) <= 50, rollout.message
    failed = rollout.measurements.get(verdict=Verdict.FAIL)
    assert FAILURE.search(failed.reason) and len(failed.reason) <= 500
    # and every call reaches the stable version again
    assert shop.versions(10) == {STABLE}


def test_a_good_version_with_the_same_callers_goes_through(shop: Shop) -> None:
    # given a new inventory that fails nothing
    shop.start_new_inventory({})
    # when it is rolled out the same way
    rollout = shop.roll_out()
    # then it reaches 100 %, each reading naming what both callers saw
    assert rollout.state == RolloutState.SUCCEEDED, rollout.message
    reasons = list(rollout.measurements.values_list("reason", flat=True))
    assert reasons, "no reading was taken"
    for caller in ("checkout", "search"):
        seen = re.compile(rf"{caller} → inventory failures [\d.]+ %( vs [\d.]+ % before)? over")
        assert all(seen.search(reason) for reason in reasons), reasons
    assert shop.versions(10) == {NEW}
