"""The fleet's control API: instances, faults, versions, starting and stopping."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from fleet.runtime import Fleet


@pytest.mark.asyncio
async def test_it_lists_instances_with_their_faults_and_versions(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given
    await fleet.set_faults("web-production-2", {"latency_ms": 40})
    # when
    async with http.get(f"{fleet.control_url}/fleet/instances",
                        params={"service": "web"}) as resp:
        body = await resp.json()
    # then
    assert resp.status == 200
    by_id = {i["id"]: i for i in body["instances"]}
    assert set(by_id) == {"web-staging-1", "web-staging-2", "web-production-1",
                          "web-production-2", "web-production-3"}
    assert by_id["web-production-2"]["faults"]["latency_ms"] == 40
    assert by_id["web-production-1"]["faults"]["latency_ms"] == 0
    assert by_id["web-production-1"]["version"] == "3.8.1"
    assert by_id["web-production-1"]["listening"] is True


@pytest.mark.asyncio
async def test_it_injects_faults_through_the_control_api(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    instance = fleet.instances["auth-production-2"]
    faults = f"{fleet.control_url}/fleet/instances/{instance.id}/faults"
    async with http.post(faults, json={"health": "fail"}) as resp:
        assert (await resp.json())["faults"]["health"] == "fail"
    async with http.get(f"{fleet.url(instance)}/health") as resp:
        assert resp.status == 503
    async with http.post(faults, json={"reset": True}) as resp:
        assert (await resp.json())["faults"]["health"] is None
    async with http.get(f"{fleet.url(instance)}/health") as resp:
        assert resp.status == 200


@pytest.mark.asyncio
async def test_it_starts_and_stops_instances_and_keeps_the_state_file_current(
    fleet: Fleet, http: aiohttp.ClientSession, state_path: Path,
) -> None:
    # when
    async with http.post(f"{fleet.control_url}/fleet/instances", json={
        "service": "checkout", "environment": "production", "version": "1.5.0-bad",
    }) as resp:
        started = await resp.json()
    # then: it runs, answers on its port, and the state file lists it
    assert resp.status == 201
    assert started["id"] == "checkout-production-4"
    async with http.get(f"http://127.0.0.1:{started['port']}/version") as resp:
        assert (await resp.json())["version"] == "1.5.0-bad"
    listed = {i["id"]: i for i in json.loads(state_path.read_text())["instances"]}
    assert listed["checkout-production-4"]["port"] == started["port"]
    # when
    async with http.delete(f"{fleet.control_url}/fleet/instances/checkout-production-4") as resp:
        assert resp.status == 200
    # then
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", started["port"])
    assert "checkout-production-4" not in json.loads(state_path.read_text())["instances"]
    async with http.get(f"{fleet.control_url}/fleet/instances/checkout-production-4") as resp:
        assert resp.status == 404


@pytest.mark.asyncio
async def test_it_refuses_to_start_an_instance_of_an_unknown_service(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    async with http.post(f"{fleet.control_url}/fleet/instances", json={
        "service": "billing", "environment": "qa", "version": "",
    }) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert set(body["error"]["fields"]) == {"service", "environment", "version"}


@pytest.mark.asyncio
async def test_it_changes_an_instances_version(
    fleet: Fleet, http: aiohttp.ClientSession, state_path: Path,
) -> None:
    async with http.post(f"{fleet.control_url}/fleet/instances/search-staging-1/version",
                         json={"version": "2.12.0"}) as resp:
        assert resp.status == 200
    async with http.get(f"{fleet.url(fleet.instances['search-staging-1'])}/health") as resp:
        assert (await resp.json(content_type=None))["version"] == "2.12.0"
    listed = {i["id"]: i for i in json.loads(state_path.read_text())["instances"]}
    assert listed["search-staging-1"]["version"] == "2.12.0"


@pytest.mark.asyncio
async def test_it_answers_404_in_the_one_error_shape(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    async with http.post(f"{fleet.control_url}/fleet/instances/nope-1/faults",
                         json={"down": True}) as resp:
        body = await resp.json()
    assert resp.status == 404
    assert body["error"]["code"] == "not_found"
    assert "nope-1" in body["error"]["message"]


@pytest.mark.asyncio
async def test_it_routes_calls_through_a_given_url(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given: calls to inventory in staging go through one chosen address (a load balancer)
    target = fleet.instances["inventory-staging-2"]
    async with http.put(f"{fleet.control_url}/fleet/routes/inventory/staging",
                        json={"url": fleet.url(target)}) as resp:
        assert resp.status == 200
    # when
    seen = set()
    for _ in range(3):
        async with http.get(f"{fleet.url(fleet.instances['search-staging-1'])}/api/work") as resp:
            seen.add((await resp.json())["dependencies"]["inventory"]["instance"])
    # then
    assert seen == {"inventory-staging-2"}
