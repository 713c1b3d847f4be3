"""Real calls between demo services: trace propagation, circuit breakers, their metrics
in Prometheus and Hystrix formats, and a bad version that misbehaves by itself."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from fleet.runtime import Fleet
from fleet.tests.conftest import url

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _work(http: aiohttp.ClientSession, target: str) -> tuple[int, dict[str, Any]]:
    async with http.get(target) as resp:
        return resp.status, await resp.json()


@pytest.mark.asyncio
async def test_it_calls_its_dependencies_carrying_the_callers_trace(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # when
    headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    async with http.get(url(fleet, "web-production-1", "/api/work"), headers=headers) as resp:
        body = await resp.json()
    # then: every dependency answered, in the same trace, from the same environment
    assert resp.status == 200
    assert body["trace_id"] == TRACE_ID
    assert body["parent_id"] == "00f067aa0ba902b7"
    assert set(body["dependencies"]) == {"auth", "search", "recommendations", "checkout"}
    for name, call in body["dependencies"].items():
        assert call["ok"], call
        assert call["trace_id"] == TRACE_ID
        assert call["instance"].startswith(f"{name}-production-")
    assert body["degraded"] is False


@pytest.mark.asyncio
async def test_it_spreads_calls_over_the_dependencys_instances(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    seen = set()
    for _ in range(6):
        _, body = await _work(http, url(fleet, "search-production-1", "/api/work"))
        seen.add(body["dependencies"]["inventory"]["instance"])
    assert seen == {"inventory-production-1", "inventory-production-2", "inventory-production-3"}


@pytest.mark.asyncio
async def test_it_opens_the_circuit_when_a_dependency_fails_and_closes_it_after(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given: every payments instance in staging errors
    for instance in fleet.of("payments", "staging"):
        await fleet.set_faults(instance.id, {"error_rate": 100})
    checkout = url(fleet, "checkout-staging-1", "/api/work")
    # when: checkout keeps calling (4 calls is the tests' minimum)
    for _ in range(6):
        status, body = await _work(http, checkout)
    # then: checkout still answers, degraded, without calling payments
    assert status == 200
    assert body["degraded"] is True
    assert body["dependencies"]["payments"]["short_circuited"] is True
    assert body["dependencies"]["inventory"]["ok"] is True
    async with http.get(url(fleet, "checkout-staging-1", "/health")) as resp:
        health = await resp.json(content_type=None)
    assert health["status"] == "warn"
    assert health["checks"]["payments:responseTime"][0]["output"] == "circuit open"
    # when: payments recovers and the wait in open has passed
    for instance in fleet.of("payments", "staging"):
        await fleet.set_faults(instance.id, {"reset": True})
    await asyncio.sleep(0.6)
    for _ in range(3):
        status, body = await _work(http, checkout)
    # then: the trial calls succeeded and the circuit closed
    assert body["dependencies"]["payments"]["circuit"] == "closed"
    assert body["degraded"] is False


@pytest.mark.asyncio
async def test_it_exposes_circuits_with_resilience4j_metric_names(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given: one failed and one successful call towards checkout's dependencies
    await fleet.set_faults("auth-production-1", {"error_rate": 100})
    await _work(http, url(fleet, "checkout-production-1", "/api/work"))
    # when
    async with http.get(url(fleet, "checkout-production-1", "/metrics")) as resp:
        text = await resp.text()
    # then
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    states = [s for s in ("closed", "open", "half_open", "forced_open", "disabled",
                          "metrics_only")]
    one_hot = [samples[f'resilience4j_circuitbreaker_state{{name="auth",state="{s}"}}']
               for s in states]
    assert one_hot == ["1", "0", "0", "0", "0", "0"]
    assert samples['resilience4j_circuitbreaker_failure_rate{name="auth"}'] == "-1.0"
    assert samples['resilience4j_circuitbreaker_slow_call_rate{name="payments"}'] == "-1.0"
    assert samples[
        'resilience4j_circuitbreaker_calls_seconds_count{kind="failed",name="auth"}'] == "1"
    assert samples[
        'resilience4j_circuitbreaker_calls_seconds_count{kind="successful",name="payments"}'
    ] == "1"
    assert samples['resilience4j_circuitbreaker_not_permitted_calls_total{name="auth"}'] == "0"


@pytest.mark.asyncio
async def test_it_streams_hystrix_events(fleet: Fleet, http: aiohttp.ClientSession) -> None:
    # given
    await _work(http, url(fleet, "payments-production-1", "/api/work"))
    # when
    async with http.get(url(fleet, "payments-production-1", "/hystrix.stream")) as resp:
        content_type = resp.headers["Content-Type"]
        line = await asyncio.wait_for(resp.content.readline(), timeout=3)
    # then
    assert content_type.startswith("text/event-stream")
    assert line.startswith(b"data: ")
    event = json.loads(line[len(b"data: "):])
    assert event["type"] == "HystrixCommand"
    assert event["name"] == "stripe"
    assert event["isCircuitBreakerOpen"] is False
    assert event["requestCount"] == 1
    assert event["rollingCountSuccess"] == 1
    assert {"errorPercentage", "rollingCountFailure", "rollingCountShortCircuited"} <= set(event)
    assert set(event["latencyExecute"]) >= {"0", "50", "99", "100"}


@pytest.mark.asyncio
async def test_a_bad_version_fails_some_calls_and_slows_all_of_them(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given
    fleet.set_version("inventory-staging-2", "2.1.0-bad")
    target = url(fleet, "inventory-staging-2", "/api/work")
    # when
    started = time.monotonic()
    results = await asyncio.gather(*(_status(http, target) for _ in range(100)))
    elapsed = time.monotonic() - started
    # then: ~30 % errors (binomial: 100 calls land within 8..55 but once in 10^6), +300 ms
    errors = results.count(500)
    assert 8 <= errors <= 55
    assert results.count(200) == 100 - errors
    assert elapsed >= 0.3
    async with http.get(url(fleet, "inventory-staging-2", "/health")) as resp:
        health = await resp.json(content_type=None)
    assert health["version"] == "2.1.0-bad"
    assert health["status"] == "warn"
    assert health["checks"]["api:errorRate"][0]["status"] == "warn"


async def _status(http: aiohttp.ClientSession, target: str) -> int:
    async with http.get(target) as resp:
        await resp.read()
        return resp.status


@pytest.mark.asyncio
async def test_the_traffic_generator_calls_the_entry_services(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # when the generator runs until 20 calls have been answered (a loaded machine sends and
    # answers them slower; `sent` counts a call when it leaves, not when it comes back)
    traffic = fleet.traffic
    traffic.set_rate(100)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while traffic.succeeded + traffic.failed < 20 and loop.time() < deadline:
        await asyncio.sleep(0.1)
    traffic.set_rate(0)
    # then: calls went through web into the rest of the fleet
    assert traffic.succeeded + traffic.failed >= 20
    assert traffic.failed == 0

    def payments_calls() -> int:
        return sum(
            b.total_successes for i in fleet.of("checkout", "production")
            for name, b in i.breakers.items() if name == "payments"
        )

    while payments_calls() == 0 and loop.time() < deadline:
        await asyncio.sleep(0.1)
    assert payments_calls() > 0
