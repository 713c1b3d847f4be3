"""The live websocket, over the real ASGI app and the real Redis pub/sub channel layer."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction

from controlplane import live
from controlplane.asgi import application
from controlplane.events import publish
from controlplane.models import Event

pytestmark = pytest.mark.usefixtures("private_live_channel")
# The consumer reads the session from another thread: those tests need committed rows.
committed_rows = pytest.mark.django_db(transaction=True)


def connect(topics: str, cookie: bytes = b"") -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, f"/ws/live/?topics={topics}", headers=headers)


def publish_committed(action: str, **kwargs: Any) -> Event:
    with transaction.atomic():
        return publish(action, **kwargs)


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., Event]:
    """committed(action, ...): publish as if the caller's transaction committed (on_commit runs)."""

    def publish_and_commit(action: str, **kwargs: Any) -> Event:
        with django_capture_on_commit_callbacks(execute=True):
            return publish(action, **kwargs)

    return publish_and_commit


def publish_rolled_back(action: str, **kwargs: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(action, **kwargs)
        raise RuntimeError("the caller's work failed")


@pytest.mark.asyncio
async def test_it_refuses_an_anonymous_page_with_4401() -> None:
    # given an anonymous page / when it connects
    communicator = connect("events")
    connected, _ = await communicator.connect()
    # then it is told why it is closed (4401), so the page says "signed out", not "retrying"
    assert connected
    closed = await communicator.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": live.CLOSE_UNAUTHENTICATED}


@committed_rows
@pytest.mark.asyncio
async def test_it_refuses_malformed_topics_with_4400(world: Any, session_cookie: Any) -> None:
    cookie = await sync_to_async(session_cookie)(world.viewer)
    communicator = connect("events,Bad%20Topic!", cookie)
    await communicator.connect()
    closed = await communicator.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": live.CLOSE_BAD_TOPICS}


@committed_rows
@pytest.mark.asyncio
async def test_a_logged_in_page_receives_the_row_of_a_committed_event(
    world: Any, session_cookie: Any
) -> None:
    # given the viewer's Events page is connected
    cookie = await sync_to_async(session_cookie)(world.viewer)
    communicator = connect("events", cookie)
    connected, _ = await communicator.connect()
    assert connected
    # when a rollout is recorded and commits
    event = await sync_to_async(publish_committed)(
        "rollout.created", actor=world.deployer, subject=world.service
    )
    # then the page receives the row, ready to swap in at the top of the timeline
    fragment = await communicator.receive_from(timeout=3)
    assert 'hx-swap-oob="afterbegin:#live-events"' in fragment
    assert f'<tr id="event-{event.pk}">' in fragment
    assert "rollout.created" in fragment
    await communicator.disconnect()


@committed_rows
@pytest.mark.asyncio
async def test_nothing_is_pushed_when_the_transaction_rolls_back(
    world: Any, session_cookie: Any
) -> None:
    cookie = await sync_to_async(session_cookie)(world.viewer)
    communicator = connect("events", cookie)
    await communicator.connect()
    # when the caller's transaction fails after publishing
    await sync_to_async(publish_rolled_back)(
        "rollout.created", actor=world.deployer, subject=world.service
    )
    # then the page hears nothing
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


@committed_rows
@pytest.mark.asyncio
async def test_it_answers_a_ping_and_counts_the_client_until_it_leaves(
    world: Any, session_cookie: Any
) -> None:
    cookie = await sync_to_async(session_cookie)(world.viewer)
    before = await sync_to_async(live.connected_clients)()
    communicator = connect("events", cookie)
    await communicator.connect()
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_from(timeout=2) == "pong"
    assert await sync_to_async(live.connected_clients)() == before + 1
    await communicator.disconnect()
    assert await sync_to_async(live.connected_clients)() == before


@committed_rows
@pytest.mark.asyncio
async def test_a_page_only_hears_the_topics_it_asked_for(world: Any, session_cookie: Any) -> None:
    cookie = await sync_to_async(session_cookie)(world.viewer)
    service_page = connect("service:checkout", cookie)
    await service_page.connect()
    await sync_to_async(live.push)("service:indexer", "<div id='tile-indexer'>x</div>")
    await sync_to_async(live.push)("service:checkout", "<div id='tile-checkout'>y</div>")
    assert await service_page.receive_from(timeout=2) == "<div id='tile-checkout'>y</div>"
    assert await service_page.receive_nothing(timeout=0.3)
    await service_page.disconnect()


# -- renderers and coalescing ------------------------------------------------------------------


@pytest.fixture
def renderer() -> Iterator[Callable[[str, live.Renderer], None]]:
    """register(prefix, fn): a renderer for this test only."""
    added: list[tuple[str, live.Renderer]] = []

    def register(prefix: str, fn: live.Renderer) -> None:
        live.renders(prefix)(fn)
        added.append(live._renderers[-1])

    yield register
    for entry in added:
        live._renderers.remove(entry)


class Listener:
    """What reaches a topic's group, read straight from Redis pub/sub."""

    def __init__(self, topic: str) -> None:
        self.layer = get_channel_layer()
        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(live._pubsub_group_channel(live.group_name(topic)))
        self.pubsub.get_message(timeout=1)  # the subscription confirmation

    def fragments(self, within: float) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = self.pubsub.get_message(timeout=left)
            if message is not None:
                seen.append(self.layer.deserialize(message["data"])["html"])
        return seen

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def listener() -> Iterator[Callable[[str], Listener]]:
    opened: list[Listener] = []

    def listen(topic: str) -> Listener:
        opened.append(Listener(topic))
        return opened[-1]

    yield listen
    for each in opened:
        each.close()


@pytest.mark.django_db
def test_a_registered_renderer_gets_its_fragment_to_its_topic(
    world: Any, renderer: Any, listener: Any, committed: Any
) -> None:
    # given a renderer for rollout events
    renderer(
        "rollout.", lambda event: [(f"service:{event.service.slug}", f"<p>{event.action}</p>")]
    )
    page = listener("service:checkout")
    # when a rollout event commits, and an unrelated one too
    committed("rollout.paused", subject=world.service)
    committed("incident.firing", subject=world.service)
    # then the service page gets the rollout's fragment only
    assert page.fragments(within=0.5) == ["<p>rollout.paused</p>"]


@pytest.mark.django_db
def test_a_failing_renderer_does_not_stop_the_others(
    world: Any, renderer: Any, listener: Any, committed: Any
) -> None:
    def broken(event: Event) -> list[live.Fragment]:
        raise ZeroDivisionError("a renderer with a bug")

    renderer("rollout.", broken)
    timeline = listener("events")
    event = committed("rollout.paused", subject=world.service)
    assert any(f"event-{event.pk}" in html for html in timeline.fragments(within=0.5))


@pytest.mark.django_db
def test_a_burst_on_one_tile_renders_twice_and_shows_the_last_state(
    world: Any, renderer: Any, listener: Any, committed: Any
) -> None:
    # given a tile renderer showing how many health changes there were
    changes = {"count": 0}

    def tile(event: Event) -> list[live.Fragment]:
        changes["count"] += 1
        return [
            live.Tile(
                "service:checkout",
                "health",
                lambda: f'<div id="tile-checkout" hx-swap-oob="true">{changes["count"]}</div>',
            )
        ]

    renderer("health.", tile)
    page = listener("service:checkout")
    # when 30 health changes commit in a burst
    started = time.monotonic()
    for _ in range(30):
        committed("health.instance.changed", subject=world.service)
    windows = (time.monotonic() - started) / live.COALESCE_WINDOW_SECONDS
    # then the tile was rendered at the first change, then at most once per window, and
    # the last render shows the last state
    fragments = page.fragments(within=live.COALESCE_WINDOW_SECONDS * 3)
    assert fragments[0] == '<div id="tile-checkout" hx-swap-oob="true">1</div>'
    assert fragments[-1] == '<div id="tile-checkout" hx-swap-oob="true">30</div>'
    assert len(fragments) <= int(windows) + 2 < 30


def _burst_from_another_process(
    start: Any, redis_url: str, counter: str, changes: int, prefix: str
) -> None:
    # A forked web/worker process: it shares nothing with the test but Redis.
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"]["CONFIG"])
    config["prefix"] = prefix
    client = redis.Redis.from_url(redis_url)
    start.wait()
    for _ in range(changes):
        client.incr(counter)
        live.push_coalesced(
            "service:checkout", "errors", lambda: f"<b>{int(client.get(counter) or 0)}</b>"
        )
    time.sleep(live.COALESCE_WINDOW_SECONDS * 4)  # let this process's window close


def test_coalescing_holds_across_processes(listener: Any, private_live_channel: str) -> None:
    # given two processes about to report error counts for the same tile
    page = listener("service:checkout")
    counter = f"test:errors:{private_live_channel}"
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [
        context.Process(
            target=_burst_from_another_process,
            args=(start, settings.REDIS_URL, counter, 25, private_live_channel),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    # when both burst at once
    start.set()
    fragments = page.fragments(within=live.COALESCE_WINDOW_SECONDS * 6)
    for worker in workers:
        worker.join(timeout=10)
    redis.Redis.from_url(settings.REDIS_URL).delete(counter)
    # then the page got a handful of renders, not fifty, and the last shows all fifty changes
    assert 2 <= len(fragments) <= 4, fragments
    assert fragments[-1] == "<b>50</b>"
