"""Live: a report that moves a circuit reaches subscribed pages, over the real websocket."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from circuits import live
from circuits.models import Circuit
from circuits.tests.conftest import batch, report, session_cookie
from controlplane.asgi import application

pytestmark = [
    pytest.mark.usefixtures("private_live_channel"),
    pytest.mark.django_db(transaction=True),
]

URL = "/api/v1/circuits/reports"


def connect(topics: str, cookie: bytes) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
    return WebsocketCommunicator(application, f"/ws/live/?topics={topics}", headers=headers)


def tile_state(html: str, circuit: Circuit) -> str | None:
    found = re.search(
        rf'id="circuit-tile-{circuit.pk}" hx-swap-oob="true" class="sb-tile" data-state="(\w+)"',
        html,
    )
    return found.group(1) if found else None


async def frames(communicator: WebsocketCommunicator, count: int) -> list[str]:
    return [await communicator.receive_from(timeout=5) for _ in range(count)]


@pytest.mark.asyncio
async def test_a_circuit_that_opens_is_pushed_to_the_grid_and_its_page(
    world: Any, reporter: APIClient
) -> None:
    # given a circuit, and pages showing the grid and its own page
    await sync_to_async(reporter.post)(URL, batch(report("indexer", ago=2)), format="json")
    circuit = await Circuit.objects.aget(name="indexer")
    cookie = await sync_to_async(session_cookie)(world.viewer)
    grid = connect("circuits", cookie)
    page = connect(f"circuit:{circuit.pk}", cookie)
    assert (await grid.connect())[0] and (await page.connect())[0]
    # when an instance reports it open
    await sync_to_async(reporter.post)(
        URL, batch(report("indexer", state="open", ago=1)), format="json"
    )
    # then the grid gets the tile, red, and the circuit page gets its parts
    [pushed] = await frames(grid, 1)
    assert tile_state(pushed, circuit) == "open"
    parts = " ".join(await frames(page, 1))
    assert 'id="circuit-summary"' in parts and 'id="circuit-instances"' in parts and "Open" in parts
    await grid.disconnect()
    await page.disconnect()


@pytest.mark.asyncio
async def test_numbers_that_move_without_a_state_change_are_pushed_once_per_tick(
    world: Any, reporter: APIClient
) -> None:
    # given a grid page and a closed circuit whose failure rate moves, three times
    await sync_to_async(reporter.post)(URL, batch(report("indexer", ago=4)), format="json")
    circuit = await Circuit.objects.aget(name="indexer")
    await sync_to_async(live.flush_dirty)()
    grid = connect("circuits", await sync_to_async(session_cookie)(world.viewer))
    assert (await grid.connect())[0]
    for ago, rate in ((3, 5.0), (2, 10.0), (1, 20.0)):
        await sync_to_async(reporter.post)(
            URL, batch(report("indexer", ago=ago, calls=50, failure_rate=rate)), format="json"
        )
    # when the beat's flush runs
    pushed = await sync_to_async(live.flush_dirty)()
    # then one tile went out, with the latest numbers
    assert pushed == 1
    [html] = await frames(grid, 1)
    assert tile_state(html, circuit) == "closed" and "20.0%" in html
    assert await grid.receive_nothing(timeout=0.3)
    await grid.disconnect()
