"""A web process under more load than it can take sheds it (503 + Retry-After, at once)
instead of letting every request wait until it times out, and recovers when the load stops.

A real uvicorn process with SIGNALBOX_MAX_IN_FLIGHT=8 and bursts of concurrent heartbeat
pings and pages (bench/resilience_overload.py drives 3x the heartbeat bench's rate).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from django.db.models import Sum

from controlplane.tests.resilience import Stack
from health.models import Heartbeat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LIMIT = 8
CLIENT_TIMEOUT_SECONDS = 10.0


@dataclass
class Answer:
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


@pytest.fixture
def web(tmp_path: Path, transactional_db: None) -> Iterator[Stack]:
    stack = Stack(tmp_path, SIGNALBOX_MAX_IN_FLIGHT=str(LIMIT))
    stack.start_web()
    yield stack
    stack.stop()


async def burst(base: str, requests: list[tuple[str, str]]) -> list[Answer]:
    """Every (method, path) at once, each with its own connection; an answer for each."""

    async def one(session: aiohttp.ClientSession, method: str, path: str) -> Answer:
        started = time.perf_counter()
        body = b"ok" if method == "POST" else None
        async with session.request(method, base + path, data=body) as r:
            body = await r.read()
            return Answer(path, r.status, dict(r.headers), body, time.perf_counter() - started)

    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        return list(await asyncio.gather(*(one(session, m, p) for m, p in requests)))


def test_an_overloaded_web_process_sheds_with_retry_after_and_recovers(
    world: Any, web: Stack
) -> None:
    # given heartbeats to ping and a web process that works on at most 8 requests at once
    beats = Heartbeat.objects.bulk_create(
        Heartbeat(name=f"job-{i}", service=world.service, environment=world.production,
                  period_seconds=3600)
        for i in range(50)
    )  # fmt: skip
    pings = [("POST", f"/api/v1/heartbeats/{beat.uuid}") for beat in beats] * 3
    pages = [("GET", "/login/")] * 40
    probes = [("GET", "/healthz"), ("GET", "/readyz")] * 5
    # when 200 requests arrive at once, pings, pages and the orchestrator's probes mixed
    answers = asyncio.run(burst(web.web_url, pings + pages + probes))
    # then every request was answered (none timed out), most of them shed
    assert len(answers) == len(pings + pages + probes)
    shed = [a for a in answers if a.status == 503]
    served = [a for a in answers if a.status == 200]
    assert len(shed) + len(served) == len(answers), {a.status for a in answers}
    assert len(shed) >= len(answers) // 2
    # and each shed answer says when to come back, in the API's shape or as a short page
    for answer in shed:
        assert answer.headers["Retry-After"] == "1"
        if answer.path.startswith("/api/"):
            assert answer.headers["Content-Type"] == "application/json"
            assert b'"code": "overloaded"' in answer.body
        else:
            assert answer.headers["Content-Type"].startswith("text/html")
            assert b"Signalbox is busy" in answer.body
    assert {a.path for a in shed} >= {pings[0][1], "/login/"}
    # and the probes were never shed: a busy process is alive and ready
    assert all(a.status == 200 for a in answers if a.path in ("/healthz", "/readyz"))
    # and every ping that was answered 200 was recorded, and none that was shed
    answered_pings = sum(1 for a in served if a.path.startswith("/api/"))
    recorded = Heartbeat.objects.aggregate(n=Sum("ping_count"))["n"] or 0
    assert recorded == answered_pings
    # when the load stops, then the process answers at once again, up to its limit together
    after = asyncio.run(burst(web.web_url, [*pings[: LIMIT - 1], ("GET", "/login/")]))
    assert [a.status for a in after] == [200] * LIMIT
    assert max(a.seconds for a in after) < 2.0
