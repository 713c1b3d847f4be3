"""The traffic generator's previews: a URL per service that reaches only its new version."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from fleet.runtime import Fleet


@pytest.mark.asyncio
async def test_it_calls_a_registered_preview_at_its_own_rate(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    # given an instance standing in for a preview frontend, and no background traffic
    checkout = fleet.instances["checkout-production-1"]
    preview = f"{fleet.control_url}/fleet/previews/checkout/production"
    # when the preview is registered at 20 calls a second
    async with http.put(preview, json={"url": fleet.url(checkout), "rps": 20}) as resp:
        assert resp.status == 200
        assert (await resp.json())["rps"] == 20
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        async with http.get(f"{fleet.control_url}/fleet/traffic") as resp:
            shown = (await resp.json())["previews"]
        if shown[0]["succeeded"] >= 10:
            break
        await asyncio.sleep(0.1)
    # then its business endpoint got the calls, counted apart from the entry services'
    assert shown[0]["service"] == "checkout" and shown[0]["url"] == fleet.url(checkout)
    assert shown[0]["succeeded"] >= 10 and shown[0]["failed"] == 0
    assert fleet.traffic.sent == 0
    # when it is removed, the calls stop
    async with http.delete(preview) as resp:
        assert resp.status == 200
    assert fleet.traffic.to_json()["previews"] == []


@pytest.mark.asyncio
async def test_a_bad_preview_is_refused_naming_the_field(
    fleet: Fleet, http: aiohttp.ClientSession,
) -> None:
    base = f"{fleet.control_url}/fleet/previews"
    async with http.put(f"{base}/checkout/production", json={"url": "ftp://x", "rps": -1}) as r:
        body = await r.json()
        assert r.status == 400
        assert set(body["error"]["fields"]) == {"url", "rps"}
    async with http.put(f"{base}/checkout/production", json={"url": "http://x", "rate": 1}) as r:
        assert r.status == 400
        assert "rate" in (await r.json())["error"]["fields"]
    async with http.put(f"{base}/nope/production", json={"url": "http://x"}) as r:
        assert r.status == 404
