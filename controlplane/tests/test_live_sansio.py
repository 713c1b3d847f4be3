"""The hub under the web process as the Procfile runs it: uvicorn's websockets-sansio protocol
without per-message deflate, served in this test's event loop (so the test sees the hub),
real websocket clients over loopback TCP, real Redis pub/sub."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect

from controlplane import live
from controlplane.asgi import application

pytestmark = [
    pytest.mark.usefixtures("private_live_channel"),
    # The consumer reads the session from another thread: committed rows.
    pytest.mark.django_db(transaction=True),
]


@pytest_asyncio.fixture
async def procfile_server() -> AsyncIterator[int]:
    """uvicorn with the Procfile's websocket flags, on an ephemeral loopback port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        application, ws="websockets-sansio", ws_per_message_deflate=False, lifespan="off",
        log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        assert not serving.done(), serving
        await asyncio.sleep(0.01)
    yield listener.getsockname()[1]
    server.should_exit = True
    await asyncio.wait_for(serving, 15)
    listener.close()


async def open_pages(port: int, cookie: bytes, topics: str, count: int) -> list[ClientConnection]:
    return [
        await connect(
            f"ws://127.0.0.1:{port}/ws/live/?topics={topics}",
            additional_headers={"Cookie": cookie.decode()},
            origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
            ping_interval=None,
        )
        for _ in range(count)
    ]


def counting_frames(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the hub frames (`text_frame` calls), in order."""
    framed: list[str] = []
    original = live.fanout.text_frame

    def text_frame(text: str) -> bytes:
        framed.append(text)
        return original(text)

    monkeypatch.setattr(live.fanout, "text_frame", text_frame)
    return framed


@pytest.mark.asyncio
async def test_a_batch_is_framed_once_and_the_same_bytes_reach_every_page(
    world: Any, session_cookie: Any, procfile_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given three Events pages on the Procfile's server
    framed = counting_frames(monkeypatch)
    cookie = await sync_to_async(session_cookie)(world.viewer)
    pages = await open_pages(procfile_server, cookie, "events", 3)
    clients = live.hub().clients["events"]
    assert len(clients) == 3 and all(client.transport is not None for client in clients)
    # when five rows are pushed within one batching window
    rows = [f'<tr id="event-{n}">row {n} é</tr>' for n in range(5)]

    def burst() -> None:
        for row in rows:
            live.push("events", row)

    await sync_to_async(burst)()
    # then every page gets the first row at once and the other four as one message
    for page in pages:
        assert await asyncio.wait_for(page.recv(), 2) == rows[0]
        assert await asyncio.wait_for(page.recv(), 2) == "".join(rows[1:])
    # and each of those two messages was framed once for the three pages
    assert framed == [rows[0], "".join(rows[1:])]
    for page in pages:
        await page.close()


@pytest.mark.asyncio
async def test_a_page_on_several_topics_gets_one_message_per_window(
    world: Any, session_cookie: Any, procfile_server: int
) -> None:
    # given a service page that also shows the events timeline, and an Events page
    cookie = await sync_to_async(session_cookie)(world.viewer)
    [service_page] = await open_pages(procfile_server, cookie, "service:checkout,events", 1)
    [events_page] = await open_pages(procfile_server, cookie, "events", 1)

    # when the service's tile changes, then (within the window) a row and the tile again
    def pushes() -> None:
        live.push("service:checkout", "<div id='tile'>1</div>")
        live.push("events", "<template><tr id='event-1'></tr></template>")
        live.push("service:checkout", "<div id='tile'>2</div>")

    await sync_to_async(pushes)()
    # then the service page gets the first change at once, and the rest in one message:
    # its topics' batches one after the other, in the order the topics got theirs
    assert await asyncio.wait_for(service_page.recv(), 2) == "<div id='tile'>1</div>"
    assert await asyncio.wait_for(service_page.recv(), 2) == (
        "<template><tr id='event-1'></tr></template><div id='tile'>2</div>"
    )
    # and the Events page gets only its row
    assert await asyncio.wait_for(events_page.recv(), 2) == (
        "<template><tr id='event-1'></tr></template>"
    )
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(service_page.recv(), live.BATCH_WINDOW_SECONDS * 3)
    await service_page.close()
    await events_page.close()


def stuck_page(port: int, cookie: bytes) -> socket.socket:
    """A page that completes the handshake and then never reads (a small receive window)."""
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.connect(("127.0.0.1", port))
    peer.sendall(
        f"GET /ws/live/?topics=events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie.decode()}\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += peer.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return peer


@pytest.mark.asyncio
@pytest.mark.parametrize("bound", ["bytes waiting", "time stalled"])
async def test_a_page_that_stops_reading_is_cut_off_and_the_others_get_everything(
    world: Any,
    session_cookie: Any,
    procfile_server: int,
    monkeypatch: pytest.MonkeyPatch,
    bound: str,
) -> None:
    if bound == "bytes waiting":
        monkeypatch.setattr(live.fanout, "MAX_PENDING_BYTES", 300_000)
    else:
        monkeypatch.setattr(live.fanout, "SEND_STALL_SECONDS", 0.3)
    monkeypatch.setattr(live.fanout, "CLOSE_WAIT_SECONDS", 0.2)
    cookie = await sync_to_async(session_cookie)(world.viewer)
    [healthy] = await open_pages(procfile_server, cookie, "events", 1)
    stuck = await asyncio.to_thread(stuck_page, procfile_server, cookie)
    while len(live.hub().clients.get("events", ())) < 2:
        await asyncio.sleep(0.01)
    where = stuck.getsockname()
    [stuck_client] = [
        c
        for c in live.hub().clients["events"]
        if c.transport is not None and c.transport.get_extra_info("peername") == where
    ]
    received: list[str] = []

    async def read_all() -> None:
        async for message in healthy:
            assert isinstance(message, str)
            received.append(message)

    reading = asyncio.create_task(read_all())
    # when 50 KB rows keep coming, a window apart, until the stuck page is dropped
    sent: list[str] = []
    assert stuck_client.transport is not None
    buffered = 0
    for n in range(400):
        row = f'<tr id="event-{n}">{"x" * 50_000}</tr>'
        sent.append(row)
        await sync_to_async(live.push)("events", row)
        await asyncio.sleep(live.BATCH_WINDOW_SECONDS * 1.2)
        if stuck_client.gone:
            break
        buffered = max(buffered, stuck_client.transport.get_write_buffer_size())
    # then it was dropped while the process held at most the bound for it
    assert stuck_client.gone, "the page that stopped reading was never dropped"
    assert stuck_client not in live.hub().clients.get("events", ())
    assert 64 * 1024 < buffered <= live.fanout.MAX_PENDING_BYTES
    # and its connection is cut within the close wait (its socket sees the end of the stream)
    deadline = asyncio.get_running_loop().time() + 5
    while not stuck_client.transport.is_closing():
        assert asyncio.get_running_loop().time() < deadline, "the stuck socket stayed open"
        await asyncio.sleep(0.05)
    stuck.close()
    # and the healthy page got every row, in order
    deadline = asyncio.get_running_loop().time() + 10
    while "".join(received) != "".join(sent):
        assert asyncio.get_running_loop().time() < deadline, "the healthy page missed rows"
        await asyncio.sleep(0.05)
    reading.cancel()
    await healthy.close()
