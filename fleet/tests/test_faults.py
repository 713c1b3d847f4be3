"""Faults injected at runtime: errors, latency, hang, down, memory leak."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from fleet.runtime import Fleet
from fleet.tests.conftest import url


@pytest.mark.asyncio
async def test_it_answers_500_to_every_business_call_at_error_rate_100(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given
    await fleet.set_faults("inventory-staging-1", {"error_rate": 100})
    # when
    statuses = []
    for _ in range(5):
        async with http.get(url(fleet, "inventory-staging-1", "/api/work")) as resp:
            statuses.append(resp.status)
    async with http.get(url(fleet, "inventory-staging-1", "/health")) as resp:
        health_status = resp.status
    # then: business calls fail, the health endpoint itself still answers
    assert statuses == [500] * 5
    assert health_status == 200


@pytest.mark.asyncio
async def test_it_adds_latency_to_its_answers(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    await fleet.set_faults("auth-staging-1", {"latency_ms": 250})
    started = time.monotonic()
    async with http.get(url(fleet, "auth-staging-1", "/health")) as resp:
        assert resp.status == 200
    assert time.monotonic() - started >= 0.25


@pytest.mark.asyncio
async def test_it_stops_listening_when_down_and_listens_again_on_reset(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given: a keep-alive connection already open to the instance
    instance = fleet.instances["search-production-2"]
    port = instance.spec.port
    async with http.get(url(fleet, instance.id, "/health")) as resp:
        assert resp.status == 200
    # when
    await fleet.set_faults(instance.id, {"down": True})
    # then: new connections are refused and the open one is gone too
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(url(fleet, instance.id, "/health")) as resp:
            await resp.read()
    # when
    await fleet.set_faults(instance.id, {"reset": True})
    # then: back on the same port
    async with http.get(f"http://127.0.0.1:{port}/health") as resp:
        assert resp.status == 200
    assert fleet.instances[instance.id].faults.down is False


@pytest.mark.asyncio
async def test_it_hangs_until_the_hang_is_lifted(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given
    await fleet.set_faults("payments-staging-1", {"hang": True})
    target = url(fleet, "payments-staging-1", "/health")
    # then: the connection is accepted but nothing comes back
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(target, timeout=aiohttp.ClientTimeout(total=0.3)) as resp:
            await resp.read()
    # when: a request is waiting and the hang is lifted
    waiting = asyncio.create_task(http.get(target))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await fleet.set_faults("payments-staging-1", {"hang": False})
    # then
    resp = await asyncio.wait_for(waiting, timeout=2)
    assert resp.status == 200
    resp.release()


@pytest.mark.asyncio
async def test_it_really_leaks_memory_and_reports_it_in_health(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given
    target = url(fleet, "notifications-staging-1", "/health")
    async with http.get(target) as resp:
        before = (await resp.json(content_type=None))["checks"]["memory:utilization"][0]
    rss_before = _rss_mb()
    # when: 3,000 MB a minute is 50 MB a second
    await fleet.set_faults("notifications-staging-1", {"leak_mb_per_min": 3000})
    deadline = time.monotonic() + 5
    while True:
        async with http.get(target) as resp:
            after = (await resp.json(content_type=None))["checks"]["memory:utilization"][0]
        if after["observedValue"] >= before["observedValue"] + 10 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    # then: at least ~50 MB more of the 512 MB limit, and really in the process's memory
    assert after["observedValue"] >= before["observedValue"] + 10
    assert _rss_mb() >= rss_before + 40
    # when: a reset is a restart, which gives the memory back
    await fleet.set_faults("notifications-staging-1", {"reset": True})
    async with http.get(target) as resp:
        reset = (await resp.json(content_type=None))["checks"]["memory:utilization"][0]
    assert reset["observedValue"] == before["observedValue"]


@pytest.mark.asyncio
async def test_the_instance_takes_faults_on_its_own_fault_endpoint(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # when
    async with http.post(url(fleet, "web-staging-1", "/_fault"),
                         json={"health": "fail", "latency_ms": 10}) as resp:
        body = await resp.json()
    # then
    assert resp.status == 200
    assert body["faults"]["health"] == "fail"
    async with http.get(url(fleet, "web-staging-1", "/health")) as resp:
        assert resp.status == 503


@pytest.mark.asyncio
async def test_it_answers_its_own_down_request_before_it_stops_listening(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    port = fleet.instances["web-staging-1"].spec.port
    async with http.post(url(fleet, "web-staging-1", "/_fault"), json={"down": True}) as resp:
        body = await resp.json()
    assert (resp.status, body["listening"]) == (200, False)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.asyncio
async def test_it_refuses_bad_faults_naming_each_field(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    async with http.post(
        f"{fleet.control_url}/fleet/instances/web-staging-1/faults",
        json={"error_rate": 101, "health": "sick", "colour": "red"},
    ) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert set(body["error"]["fields"]) == {"error_rate", "health", "colour"}
    assert body["error"]["code"] == "invalid"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")
