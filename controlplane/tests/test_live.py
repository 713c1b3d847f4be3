"""The live websocket, over the real ASGI app and the real Redis pub/sub channel layer."""

from __future__ import annotations

import asyncio
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


# -- the hub: fan-out inside a web process -----------------------------------------------------


async def pages(cookie: bytes, topics: str, count: int) -> list[WebsocketCommunicator]:
    opened = [connect(topics, cookie) for _ in range(count)]
    for page in opened:
        connected, _ = await page.connect()
        assert connected
    return opened


def clients_of(topic: str) -> set[live.LiveClient]:
    return set(live.hub().clients.get(topic, set()))


def client_of(page: WebsocketCommunicator, topic: str) -> live.LiveClient:
    """The hub's client for a test page: its send leads to the communicator's output queue."""

    def queue_of(send: Any) -> Any:
        while not isinstance(getattr(send, "__self__", None), asyncio.Queue):
            send = send.__self__.real_send  # the session middleware's wrapper
        return send.__self__

    [found] = [c for c in clients_of(topic) if queue_of(c.send) is page.output_queue]
    return found


@committed_rows
@pytest.mark.asyncio
async def test_pages_in_one_process_get_a_burst_as_one_batched_message(
    world: Any, session_cookie: Any
) -> None:
    # given four Events pages served by this process (one Redis subscription between them)
    cookie = await sync_to_async(session_cookie)(world.viewer)
    events_pages = await pages(cookie, "events", 4)
    numsub = await sync_to_async(redis.Redis.from_url(settings.REDIS_URL).pubsub_numsub)(
        live.topic_channel("events")
    )
    assert numsub[0][1] == 1
    # when five rows are pushed within one batching window
    rows = [f'<tr id="event-{n}">row {n}</tr>' for n in range(5)]

    def burst() -> None:
        for row in rows:
            live.push("events", row)

    await sync_to_async(burst)()
    # then each page gets the first row at once, and the other four together in one message
    # at the window's end, in the order they were pushed
    for page in events_pages:
        assert await page.receive_from(timeout=2) == rows[0]
        assert await page.receive_from(timeout=2) == "".join(rows[1:])
        assert await page.receive_nothing(timeout=live.BATCH_WINDOW_SECONDS * 2)
        await page.disconnect()


@committed_rows
@pytest.mark.asyncio
async def test_a_page_whose_socket_fails_is_dropped_and_the_others_still_hear(
    world: Any, session_cookie: Any
) -> None:
    cookie = await sync_to_async(session_cookie)(world.viewer)
    first, broken, third = await pages(cookie, "events", 3)
    failing = client_of(broken, "events")

    async def fails(message: dict[str, Any]) -> None:
        raise OSError("connection reset by peer")

    failing.send = fails
    # when a row is pushed: one page's socket raises
    await sync_to_async(live.push)("events", "<p>one</p>")
    # then the two others get it, and the broken one is no longer sent to
    assert await first.receive_from(timeout=2) == "<p>one</p>"
    assert await third.receive_from(timeout=2) == "<p>one</p>"
    assert failing.gone
    assert failing not in clients_of("events") and len(clients_of("events")) == 2
    # and the next push still reaches the others (the topic stays subscribed)
    await sync_to_async(live.push)("events", "<p>two</p>")
    assert await first.receive_from(timeout=2) == "<p>two</p>"
    assert await third.receive_from(timeout=2) == "<p>two</p>"
    for page in (first, broken, third):
        await page.disconnect()


@committed_rows
@pytest.mark.asyncio
async def test_a_stalled_page_is_closed_with_1013_without_holding_up_the_others(
    world: Any, session_cookie: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live.fanout, "SEND_STALL_SECONDS", 0.2)
    cookie = await sync_to_async(session_cookie)(world.viewer)
    healthy, stalled = await pages(cookie, "service:checkout", 2)
    # the second page's socket stops taking messages (a peer that stopped reading)
    stuck = client_of(stalled, "service:checkout")
    original = stuck.send
    never = asyncio.Event()

    async def takes_nothing(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await never.wait()
        await original(message)

    stuck.send = takes_nothing
    await sync_to_async(live.push)("service:checkout", "<p>a</p>")
    assert await healthy.receive_from(timeout=2) == "<p>a</p>"
    # when more arrives after the stalled one has been stuck past the bound
    await asyncio.sleep(0.3)
    await sync_to_async(live.push)("service:checkout", "<p>b</p>")
    # then the healthy page gets it, and the stuck one is closed with "try again later"
    assert await healthy.receive_from(timeout=2) == "<p>b</p>"
    closed = [await stalled.receive_output(timeout=2)]
    assert {"type": "websocket.close", "code": live.CLOSE_TOO_SLOW} in closed
    assert stuck not in clients_of("service:checkout")
    await healthy.disconnect()


@committed_rows
@pytest.mark.asyncio
async def test_a_topic_is_watched_while_a_page_shows_it(world: Any, session_cookie: Any) -> None:
    cookie = await sync_to_async(session_cookie)(world.viewer)
    topics = ["service:checkout", "service:indexer"]
    assert await sync_to_async(live.watched)(topics) == set()
    [page] = await pages(cookie, "service:checkout", 1)
    assert await sync_to_async(live.watched)(topics) == {"service:checkout"}
    # when the last page showing it leaves, the process unsubscribes
    await page.disconnect()
    deadline = time.monotonic() + 2
    while await sync_to_async(live.watched)(topics) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert await sync_to_async(live.watched)(topics) == set()


def test_every_topic_counts_as_watched_when_redis_cannot_say(
    settings: Any, redis_server: Any
) -> None:
    settings.REDIS_URL = redis_server.url
    redis_server.stop()
    assert live.watched(["events", "rollouts"]) == {"events", "rollouts"}


@pytest.mark.django_db
def test_fragments_of_topics_no_page_watches_are_not_rendered(
    world: Any, renderer: Any, listener: Any, committed: Any
) -> None:
    # given a renderer with lazy fragments for a watched topic and for unwatched ones
    rendered: list[str] = []

    def lazily(topic: str) -> Callable[[], str]:
        def render() -> str:
            rendered.append(topic)
            return f"<p>{topic}</p>"

        return render

    renderer(
        "rollout.",
        lambda event: [
            live.Lazy("service:checkout", lazily("service:checkout")),
            live.Lazy("service:nobody", lazily("service:nobody")),
            live.Tile("rollout:nobody", "main", lazily("rollout:nobody")),
        ],
    )
    page = listener("service:checkout")
    # when a rollout event commits
    committed("rollout.paused", subject=world.service)
    # then only the watched topic's fragment was rendered, and it was pushed
    assert page.fragments(within=0.5) == ["<p>service:checkout</p>"]
    assert rendered == ["service:checkout"]


@committed_rows
@pytest.mark.asyncio
async def test_pages_on_many_topics_keep_hearing_their_own(world: Any, session_cookie: Any) -> None:
    # given pages on three services' topics, joining all at once
    cookie = await sync_to_async(session_cookie)(world.viewer)
    topics = ["service:a", "service:b", "service:c"]
    opened = {topic: [connect(topic, cookie) for _ in range(2)] for topic in topics}
    joined = await asyncio.gather(*(p.connect() for ps in opened.values() for p in ps))
    assert all(connected for connected, _ in joined)
    # when each topic gets a fragment, in rounds further apart than the batching window
    for round_ in range(3):
        for topic in topics:
            await sync_to_async(live.push)(topic, f"<p>{topic} {round_}</p>")
        # then every page hears its own topic's, every round
        for topic, its_pages in opened.items():
            for page in its_pages:
                assert await page.receive_from(timeout=2) == f"<p>{topic} {round_}</p>"
        await asyncio.sleep(live.BATCH_WINDOW_SECONDS * 1.5)
    for its_pages in opened.values():
        for page in its_pages:
            await page.disconnect()


@committed_rows
@pytest.mark.asyncio
async def test_pages_are_told_to_reconnect_when_their_process_loses_redis(
    world: Any, session_cookie: Any, settings: Any, redis_server: Any
) -> None:
    # given a page live through a process whose Redis then stops
    settings.REDIS_URL = redis_server.url
    cookie = await sync_to_async(session_cookie)(world.viewer)
    [page] = await pages(cookie, "events", 1)
    await sync_to_async(redis_server.stop)()
    # then the page is closed with 1012, which it retries (and re-syncs once back)
    closed = await page.receive_output(timeout=15)
    assert closed == {"type": "websocket.close", "code": live.CLOSE_LIVE_LOST}
    # and a page connecting while Redis is away is told to retry (1011), not left deaf
    late = connect("events", cookie)
    connected, _ = await late.connect(timeout=15)
    assert connected
    closed = await late.receive_output(timeout=15)
    assert closed == {"type": "websocket.close", "code": live.CLOSE_LIVE_UNAVAILABLE}
