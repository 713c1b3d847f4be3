"""An instance's /health, / and /version."""

from __future__ import annotations

import aiohttp
import pytest

from fleet.runtime import Fleet
from fleet.tests.conftest import url


@pytest.mark.asyncio
async def test_it_answers_health_json_with_its_components(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # when
    async with http.get(url(fleet, "checkout-production-1", "/health")) as resp:
        body = await resp.json(content_type=None)
    # then
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/health+json")
    assert body["status"] == "pass"
    assert body["version"] == "1.4.2"
    assert body["serviceId"] == "checkout"
    assert body["instanceId"] == "checkout-production-1"
    checks = body["checks"]
    assert {"uptime", "memory:utilization", "api:errorRate"} <= checks.keys()
    for dependency in ("auth", "payments", "inventory", "notifications"):
        assert checks[f"{dependency}:responseTime"][0]["status"] == "pass"
    memory = checks["memory:utilization"][0]
    assert memory["observedUnit"] == "percent"
    assert 0 < memory["observedValue"] < 80


@pytest.mark.asyncio
async def test_it_answers_503_with_fail_when_told_to_fail(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given
    await fleet.set_faults("auth-staging-1", {"health": "fail"})
    # when
    async with http.get(url(fleet, "auth-staging-1", "/health")) as resp:
        body = await resp.json(content_type=None)
    # then
    assert resp.status == 503
    assert body["status"] == "fail"
    assert "fault injection" in body["output"]


@pytest.mark.asyncio
async def test_it_answers_200_with_warn_when_told_to_warn(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    await fleet.set_faults("auth-staging-1", {"health": "warn"})
    async with http.get(url(fleet, "auth-staging-1", "/health")) as resp:
        body = await resp.json(content_type=None)
    assert (resp.status, body["status"]) == (200, "warn")


@pytest.mark.asyncio
async def test_it_says_who_it_is_and_which_version_it_runs(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    async with http.get(url(fleet, "web-staging-2", "/")) as resp:
        about = await resp.json()
    async with http.get(url(fleet, "web-staging-2", "/version")) as resp:
        version = await resp.json()
    assert about["service"] == "web"
    assert about["environment"] == "staging"
    assert about["zone"] == "zone-b"
    assert version == {"service": "web", "instance": "web-staging-2", "version": "3.9.0"}
