"""A demo fleet started in the test's own event loop, on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from fleet.breaker import BreakerConfig
from fleet.plan import build_plan
from fleet.runtime import Fleet

DEMO = Path(__file__).resolve().parents[1] / "demo.yaml"

# Circuits that decide fast, so a test sees them open and close within a second.
FAST_BREAKER = BreakerConfig(minimum_calls=4, wait_in_open=0.5, half_open_calls=2)


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "fleet.json"


@pytest_asyncio.fixture
async def fleet(state_path: Path) -> AsyncIterator[Fleet]:
    plan = build_plan(DEMO, base_port=0, control_port=0)
    running = Fleet(plan, state_path=state_path, breaker_config=FAST_BREAKER,
                    shutdown_timeout=0.5)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def url(fleet: Fleet, instance_id: str, path: str) -> str:
    return fleet.url(fleet.instances[instance_id]) + path
