"""The demo fleet, for real: a fault injected into payments opens checkout's circuit towards it,
as scraped from /metrics (resilience4j names) and /hystrix.stream; lifting it closes it again.

The fleet (fleet/, docs/fleet.md) runs in its own thread and event loop on free ports of
127.0.0.1; the scraper under test reaches it over real sockets.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from catalog.models import Instance, Service
from circuits.choices import ScrapeKind
from circuits.ingest import scrape as scraping
from circuits.models import Circuit, CircuitInstanceState, ScrapeTarget
from fleet.breaker import BreakerConfig
from fleet.plan import build_plan
from fleet.runtime import Fleet

DEMO = Path(__file__).resolve().parents[2] / "fleet" / "demo.yaml"
# Circuits that decide fast: open after 4 calls at 50 % failures, half open after 0.5 s.
FAST = BreakerConfig(minimum_calls=4, wait_in_open=0.5, half_open_calls=2)


class RunningFleet:
    """A Fleet in a background event loop, driven from synchronous test code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        plan = build_plan(DEMO, base_port=0, control_port=0, count_per_service=1)
        self.fleet = Fleet(plan, breaker_config=FAST, hystrix_interval=0.2, shutdown_timeout=0.5)
        self.run(self.fleet.start())

    def run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(30)

    def url(self, instance_id: str) -> str:
        return self.fleet.url(self.fleet.instances[instance_id])

    def work(self, instance_id: str, times: int) -> None:
        """Business calls to an instance: each calls all its dependencies through breakers."""
        for _ in range(times):
            with urllib.request.urlopen(self.url(instance_id) + "/api/work", timeout=10) as r:
                r.read()

    def stop(self) -> None:
        self.run(self.fleet.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def demo() -> Iterator[RunningFleet]:
    running = RunningFleet()
    try:
        yield running
    finally:
        running.stop()


def checkout_targets(world: Any, demo: RunningFleet) -> tuple[ScrapeTarget, ScrapeTarget]:
    """checkout-production-1 in the catalog, labelled for scraping like any instance would be."""
    Service.objects.create(slug="payments", name="Payments", team=world.team)
    address = urlsplit(demo.url("checkout-production-1"))
    Instance.objects.create(
        service=world.service,
        environment=world.production,
        host=str(address.hostname),
        port=int(address.port or 0),
        labels={"circuits.prometheus_path": "/metrics", "circuits.hystrix_path": "/hystrix.stream"},
    )
    scraping.sync_all()
    return (
        ScrapeTarget.objects.get(kind=ScrapeKind.PROMETHEUS),
        ScrapeTarget.objects.get(kind=ScrapeKind.HYSTRIX),
    )


def payments_circuit() -> tuple[Circuit, CircuitInstanceState]:
    circuit = Circuit.objects.select_related("protects_service").get(name="payments")
    return circuit, circuit.instance_states.get()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_fault_in_payments_opens_checkouts_circuit_in_both_formats(
    world: Any, demo: RunningFleet
) -> None:
    prometheus, hystrix = checkout_targets(world, demo)
    # given payments in production failing every call
    demo.run(demo.fleet.set_faults("payments-production-1", {"error_rate": 100}))
    # when checkout does business for a while
    demo.work("checkout-production-1", 6)
    # then its circuit towards payments is open, as its /metrics page says
    scraping.scrape([prometheus.pk])
    circuit, state = payments_circuit()
    assert (circuit.state, circuit.target_label, state.source) == ("open", "payments", "prometheus")
    assert state.failure_rate == 100.0
    # and as its Hystrix stream says
    time.sleep(0.3)
    scraping.scrape([hystrix.pk])
    circuit, state = payments_circuit()
    assert (circuit.state, state.source) == ("open", "hystrix")


@pytest.mark.slow
@pytest.mark.django_db
def test_lifting_the_fault_closes_the_circuit_again(world: Any, demo: RunningFleet) -> None:
    prometheus, _ = checkout_targets(world, demo)
    demo.run(demo.fleet.set_faults("payments-production-1", {"error_rate": 100}))
    demo.work("checkout-production-1", 6)
    scraping.scrape([prometheus.pk])
    assert payments_circuit()[0].state == "open"
    # when payments recovers and checkout's breaker has waited in open
    demo.run(demo.fleet.set_faults("payments-production-1", {"reset": True}))
    time.sleep(FAST.wait_in_open + 0.2)
    demo.work("checkout-production-1", FAST.half_open_calls)
    # then the next scrape shows it closed, with the way there kept as history
    scraping.scrape([prometheus.pk])
    circuit = payments_circuit()[0]
    assert circuit.state == "closed"
    moves = list(circuit.transitions.exclude(instance_key="").values_list("from_state", "to_state"))
    assert ("open", "closed") in moves
