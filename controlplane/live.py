"""Live dashboard: the websocket consumer, the per-process fan-out hub, and fragments pushed.

A page connects to `/ws/live/?topics=a,b`. When an event commits, every renderer registered
for its action says what it changes: `(topic, html)` pairs, `Lazy(topic, render)` fragments,
or `Tile`s, which show current state and are rendered at most once per key per short window
however many events arrive (see `push_coalesced`). Fragments of topics no web process
watches are skipped (`watched`), unrendered.

Each fragment is rendered once and published on its topic's Redis channel (`push`). Each web
process has one `Hub` per event loop: one Redis pub/sub connection subscribed to the topics
its pages watch, which writes each fragment straight to those pages' websockets, batching a
topic's fragments into one websocket message per `BATCH_WINDOW_SECONDS` (leading edge: the
first after a quiet spell goes at once). htmx swaps each top-level element in out of band.

Renderers live in `<app>/live.py` modules, which are imported on the first broadcast.
"""

from __future__ import annotations

import asyncio
import atexit
import heapq
import itertools
import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs

import msgpack
import redis
import redis.asyncio as aioredis
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.conf import settings
from django.db import close_old_connections, connections
from django.template.loader import render_to_string
from django.utils.module_loading import autodiscover_modules

from controlplane.models import Event

logger = logging.getLogger(__name__)

# "events", "service:checkout", "team:payments", "rollout:42"
TOPIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}(:[a-z0-9][a-z0-9._-]{0,80})?$")
MAX_TOPICS = 20
CLIENTS_KEY = "signalbox:live:clients"
# Pages ping every 25 s (static/js/signalbox.js); a client not heard from in three pings is
# gone even if its web process died without saying so.
CLIENT_TTL_SECONDS = 75
# One update per tile per window: short enough to feel instant, long enough to fold a
# burst (a rollout step touching every instance) into one render.
COALESCE_WINDOW_SECONDS = 0.25
# A window's owner that died leaves its key behind; after this it is free again.
_WINDOW_TTL_MS = int(COALESCE_WINDOW_SECONDS * 4000)
_DIRTY_TTL_MS = 60_000

# The hub sends a topic's first fragment after a quiet spell at once, and what arrives in the
# next BATCH_WINDOW_SECONDS as one websocket message at the window's end (and so on while
# fragments keep coming). At 100 events/s to 500 pages that is ~10 messages per page per
# second instead of 100: the web process's cost is per websocket message, not per byte
# (bench/live_fanout), and an event still shows within the window.
BATCH_WINDOW_SECONDS = 0.1
# A page whose socket has not taken a message for this long, or has this much waiting, is
# closed (1013, "try again later": the page reconnects and re-syncs): one stuck client must
# neither hold the others back nor make the process buffer without bound.
SEND_STALL_SECONDS = 5.0
MAX_PENDING_BYTES = 1_000_000

CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_TOPICS = 4400
CLOSE_TOO_SLOW = 1013  # retried by the page (htmx's ws extension retries 1011-1013)
CLOSE_LIVE_UNAVAILABLE = 1011  # Redis unreachable: the page retries with back-off
CLOSE_LIVE_LOST = 1012  # the hub lost Redis: reconnect (and re-sync: pushes may be lost)


@dataclass(frozen=True)
class Tile:
    """A fragment showing current state: rendered at most once per (topic, key) per window."""

    topic: str
    key: str
    render: Callable[[], str]


@dataclass(frozen=True)
class Lazy:
    """A fragment of something that happens once (a timeline row), rendered only when needed.

    `render` is called once, and only if some page watches `topic`.
    """

    topic: str
    render: Callable[[], str]


# (topic, html) pairs are pushed as they are (already rendered).
Fragment = tuple[str, str] | Lazy | Tile
Renderer = Callable[[Event], Iterable[Fragment]]
_renderers: list[tuple[str, Renderer]] = []
_discovered = False


def renders(action_prefix: str) -> Callable[[Renderer], Renderer]:
    """Register a renderer for events whose action starts with `action_prefix` ("" for all)."""

    def register(fn: Renderer) -> Renderer:
        _renderers.append((action_prefix, fn))
        return fn

    return register


def group_name(topic: str) -> str:
    """Channels group names allow letters, digits, '-', '_' and '.' only."""
    return "live." + topic.replace(":", ".")


def topic_channel(topic: str) -> str:
    """The Redis pub/sub channel a topic's fragments are published on.

    It is the channel Channels' `RedisPubSubChannelLayer` used for the topic's group (the
    configured layer prefix, which names the Redis database, then `__group__live.<topic>`),
    and a message is that layer's wire format (msgpack `{"type": "live.fragment", "html"}`):
    so web processes and workers of the previous release interoperate during a rolling
    deploy, and tools listening there keep working.
    """
    return _pubsub_group_channel(group_name(topic))


def _pubsub_group_channel(group: str) -> str:
    return f"{_channel_prefix()}__group__{group}"


def _channel_prefix() -> str:
    layer = cast(dict[str, Any], settings.CHANNEL_LAYERS.get("default", {}))
    return str(cast(dict[str, Any], layer.get("CONFIG", {})).get("prefix", "asgi"))


def encode(html: str) -> bytes:
    return cast(bytes, msgpack.packb({"type": "live.fragment", "html": html}))


def decode(data: bytes) -> str:
    return cast(str, msgpack.unpackb(data)["html"])


def push(topic: str, html: str) -> None:
    """Send one rendered fragment to every page subscribed to `topic`, in every web process."""
    # One PUBLISH on a pooled connection (~0.07 ms); each web process's hub fans it out.
    _redis().publish(topic_channel(topic), encode(html))


def watched(topics: Iterable[str]) -> set[str]:
    """The topics some web process has a page subscribed to (all of them when unsure)."""
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return set()
    channels = {topic_channel(topic): topic for topic in wanted}
    try:
        counts = _redis().pubsub_numsub(*channels)
    except redis.RedisError:
        logger.warning("could not tell which live topics are watched", exc_info=True)
        return set(wanted)
    return {channels[_text(channel)] for channel, count in counts if count}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def broadcast(event: Event | int) -> None:
    """Render each fragment an event changes once, and push it to its topic.

    `event` is the committed row (or its id, loaded here). Fragments of topics no page
    watches are dropped before they are rendered: a page that opens later renders the
    current state itself.
    """
    _discover()
    if isinstance(event, int):
        found = (
            Event.objects.select_related("team", "service", "environment").filter(pk=event).first()
        )
        if found is None:
            return
        event = found
    event_id = event.pk
    fragments: list[Fragment] = []
    for prefix, render in _renderers:
        if not event.action.startswith(prefix):
            continue
        try:
            fragments.extend(render(event))
        except Exception:
            # One broken renderer must not keep the other tiles from updating.
            logger.exception("live renderer %s failed for event %s", render.__name__, event_id)
    if not fragments:
        return
    looked_at = watched(_topic_of(fragment) for fragment in fragments)
    for fragment in fragments:
        if _topic_of(fragment) not in looked_at:
            continue
        if isinstance(fragment, Tile):
            push_coalesced(fragment.topic, fragment.key, fragment.render)
        elif isinstance(fragment, Lazy):
            _render_and_push(fragment.topic, fragment.render)
        else:
            push(*fragment)


def _topic_of(fragment: Fragment) -> str:
    return fragment.topic if isinstance(fragment, Tile | Lazy) else fragment[0]


def _discover() -> None:
    global _discovered
    if not _discovered:
        autodiscover_modules("live")
        _discovered = True


# -- coalescing -----------------------------------------------------------------------------

# KEYS: window, dirty. ARGV: owner token, window ttl ms, dirty ttl ms.
# 1: the caller opened the window and renders now; 0: a window is open, its owner will
# render once more when it closes.
_OPEN_WINDOW = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return 0
"""
# 1: changes arrived during the window: render again and keep the window open another
# round; 0: nothing new, the window is closed.
_CLOSE_WINDOW = """
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


def push_coalesced(
    topic: str,
    key: str,
    render: Callable[[], str],
    window: float = COALESCE_WINDOW_SECONDS,
) -> bool:
    """Push `render()` to `topic` now, or fold this change into the window already open.

    The first change to (topic, key) renders at once and opens a window shared by every
    process through Redis; changes during the window only mark it dirty, and when it
    closes its owner renders once more, reading the state as it is by then. So a burst of
    any size costs two renders per window, and the last state always reaches the page.
    `render` must read current state itself (it may run up to `window` seconds later, in
    another thread). Returns True when this call rendered.
    """
    window_key = f"signalbox:live:window:{topic}:{key}"
    keys = [window_key, window_key + ":dirty"]
    token = uuid.uuid4().hex
    window_ms = int(window * 1000)
    ttl_ms = max(_WINDOW_TTL_MS, window_ms * 4)
    if not _redis().eval(_OPEN_WINDOW, 2, *keys, token, ttl_ms, _DIRTY_TTL_MS):
        return False
    _render_and_push(topic, render)

    def close() -> None:
        if _redis().eval(_CLOSE_WINDOW, 2, *keys, token, ttl_ms):
            _render_and_push(topic, render)
            _closer.later(window, close)

    _closer.later(window, close)
    return True


def _render_and_push(topic: str, render: Callable[[], str]) -> None:
    try:
        push(topic, render())
    except Exception:
        logger.exception("live render for topic %s failed", topic)


class _WindowCloser:
    """One thread per process that closes coalescing windows when they are due."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), fn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="signalbox-live-windows", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def drain(self, within: float = 2.0) -> None:
        """Run pending closes now (at exit, so a short command's last change shows).

        Bounded in time: other processes may keep marking a window dirty, and each close
        that renders arms another.
        """
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._cond:
                if not self._due:
                    return
                _, _, fn = heapq.heappop(self._due)
            self._call(fn)

    def reset_after_fork(self) -> None:
        # The child has no closer thread and maybe a lock held by a thread that is gone.
        self._due = []
        self._cond = threading.Condition()
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    # Between bursts, give the database connection back (tests drop the
                    # database at the end, and idle connections cost the server memory).
                    connections.close_all()
                    self._cond.wait()
                due, _, fn = self._due[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)
            self._call(fn)

    @staticmethod
    def _call(fn: Callable[[], None]) -> None:
        close_old_connections()
        try:
            fn()
        except Exception:
            logger.exception("closing a live coalescing window failed")


_closer = _WindowCloser()
os.register_at_fork(after_in_child=_closer.reset_after_fork)


# At exit the closer thread (a daemon) is still alive but about to stop: run what it holds.
atexit.register(_closer.drain)


# -- Redis ----------------------------------------------------------------------------------

_pools: dict[str, redis.ConnectionPool] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _redis() -> redis.Redis:
    url = settings.REDIS_URL
    pool = _pools.get(url)
    if pool is None:
        pool = _pools[url] = redis.ConnectionPool.from_url(
            url, socket_timeout=2, socket_connect_timeout=2
        )
    return redis.Redis(connection_pool=pool)


def _async_redis() -> aioredis.Redis:
    """One client (and pool) per event loop: uvicorn has one, each test has its own."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
    return client


# -- the hub: fan-out inside a web process -------------------------------------------------

Send = Callable[[dict[str, Any]], Awaitable[None]]


class LiveClient:
    """One page's websocket as the hub sees it: its topics and what is waiting to be sent.

    A writer task per client sends what is waiting, joined into one message, so one slow
    socket only ever holds up itself.
    """

    def __init__(self, hub: Hub, send: Send, topics: list[str]) -> None:
        self.hub = hub
        self.send = send
        self.topics = topics
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.sending_since: float | None = None
        self.gone = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sending (once the socket is accepted); anything already waiting goes first."""
        if self._task is None and not self.gone:
            self._task = asyncio.get_running_loop().create_task(self._write())

    def offer(self, text: str, now: float) -> None:
        if self.gone:
            return
        if self.sending_since is not None and now - self.sending_since > SEND_STALL_SECONDS:
            self.hub.drop(self, CLOSE_TOO_SLOW, "its socket took no message for too long")
            return
        self.pending.append(text)
        self.pending_bytes += len(text)
        if self.pending_bytes > MAX_PENDING_BYTES:
            self.hub.drop(self, CLOSE_TOO_SLOW, "too much waiting to be sent")
            return
        self._wake.set()

    def stop(self) -> None:
        self.gone = True
        self.pending.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _write(self) -> None:
        try:
            while not self.gone:
                if not self.pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                text = self.pending[0] if len(self.pending) == 1 else "".join(self.pending)
                self.pending.clear()
                self.pending_bytes = 0
                self.sending_since = self.hub.loop.time()
                await self.send({"type": "websocket.send", "text": text})
                self.sending_since = None
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # The socket is gone (or broken): forget it; the others carry on.
            self.hub.drop(self, None, f"sending failed: {error!r}")


class Hub:
    """Fan-out of pushed fragments to this process's pages: one per event loop (`hub()`).

    One Redis pub/sub connection, subscribed to the channel of each topic that at least one
    page here watches (subscribed on the first page's join, unsubscribed on the last one's
    leave). Each fragment is batched per topic (`BATCH_WINDOW_SECONDS`) and handed to the
    topic's clients, whose writer tasks send it: no channel layer, no per-message tasks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: dict[str, set[LiveClient]] = {}
        self._client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
        self._pubsub = self._client.pubsub()
        self._prefix = _channel_prefix()
        self._subscribed: dict[str, asyncio.Future[None]] = {}  # topic -> confirmed
        self._topics: dict[bytes, str] = {}  # channel -> topic
        self._windows: dict[str, list[str]] = {}  # topic -> fragments held until the window ends
        self._reader: asyncio.Task[None] | None = None
        # One (un)subscribe at a time: redis-py's PubSub opens its connection on the first
        # command, and concurrent first commands would each open one (only one is read).
        self._commands = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def channel(self, topic: str) -> str:
        return f"{self._prefix}__group__{group_name(topic)}"

    async def join(self, topics: list[str], send: Send) -> LiveClient:
        """Register a page for `topics`, subscribed (confirmed by Redis) when this returns.

        Call `start()` on the result once the socket is accepted. Raises RedisError if the
        subscription cannot be made.
        """
        client = LiveClient(self, send, topics)
        new: list[str] = []
        for topic in topics:
            self.clients.setdefault(topic, set()).add(client)
            if topic not in self._subscribed:
                self._subscribed[topic] = self.loop.create_future()
                self._topics[self.channel(topic).encode()] = topic
                new.append(topic)
        confirmations = [self._subscribed[topic] for topic in topics]
        try:
            if new:
                async with self._commands:
                    await self._pubsub.subscribe(*(self.channel(topic) for topic in new))
                if self._reader is None or self._reader.done():
                    self._reader = self.loop.create_task(self._read())
            if confirmations:
                await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, confirmations)), 5)
        except (TimeoutError, redis.RedisError, OSError) as error:
            self.leave(client)
            raise redis.ConnectionError(f"live subscription failed: {error!r}") from error
        except BaseException:  # cancelled (the server is stopping): leave nothing behind
            self.leave(client)
            raise
        return client

    def leave(self, client: LiveClient) -> None:
        """Forget a page (idempotent); unsubscribe the topics no page here watches any more."""
        client.stop()
        empty = []
        for topic in client.topics:
            watching = self.clients.get(topic)
            if watching is None:
                continue
            watching.discard(client)
            if not watching:
                del self.clients[topic]
                empty.append(topic)
        if empty:
            self._background(self._unsubscribe(empty))

    def drop(self, client: LiveClient, code: int | None, why: str) -> None:
        """Stop sending to a page, and close its socket with `code` (None: it is gone)."""
        if client.gone:
            return
        logger.info("dropping live client on %s: %s", ",".join(client.topics), why)
        self.leave(client)
        if code is not None:
            self._background(self._close(client, code))

    def deliver(self, topic: str, html: str) -> None:
        """A fragment for `topic` arrived: send it now, or hold it for the open window."""
        held = self._windows.get(topic)
        if held is not None:
            held.append(html)
            return
        self._windows[topic] = []
        self.loop.call_later(BATCH_WINDOW_SECONDS, self._end_window, topic)
        self._send(topic, html)

    def _end_window(self, topic: str) -> None:
        held = self._windows.pop(topic, None)
        if held:  # more came in the window: send them as one, and hold the next ones again
            self._windows[topic] = []
            self.loop.call_later(BATCH_WINDOW_SECONDS, self._end_window, topic)
            self._send(topic, "".join(held))

    def _send(self, topic: str, text: str) -> None:
        now = self.loop.time()
        for client in list(self.clients.get(topic, ())):
            client.offer(text, now)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("the live hub lost Redis; pages will reconnect", exc_info=True)
                await self._reset()
                return
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        topic = self._topics.get(message["channel"])
        if topic is None:
            return
        if kind == "message":
            try:
                html = decode(message["data"])
            except Exception:
                logger.warning("undecodable live message on %s", topic, exc_info=True)
                return
            self.deliver(topic, html)
        elif kind == "subscribe":
            confirmed = self._subscribed.get(topic)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)

    async def _unsubscribe(self, topics: list[str]) -> None:
        # A page may have joined again since: keep the topics someone watches.
        gone = [topic for topic in topics if topic not in self.clients]
        for topic in gone:
            confirmed = self._subscribed.pop(topic, None)
            if confirmed is not None and not confirmed.done():
                confirmed.cancel()
            self._windows.pop(topic, None)
        if gone:
            try:
                async with self._commands:
                    await self._pubsub.unsubscribe(*(self.channel(topic) for topic in gone))
            except (redis.RedisError, OSError):
                logger.warning("could not unsubscribe live topics %s", gone, exc_info=True)

    async def _reset(self) -> None:
        """After losing Redis: close every page (they reconnect and re-sync), start afresh."""
        for clients in list(self.clients.values()):
            for client in list(clients):
                self.drop(client, CLOSE_LIVE_LOST, "the hub lost its Redis connection")
        for confirmed in self._subscribed.values():
            if not confirmed.done():  # pages joining now are refused; they retry
                confirmed.set_exception(redis.ConnectionError("the live hub lost Redis"))
                confirmed.exception()  # seen: no "never retrieved" warning if none waits
        self._subscribed.clear()
        self._topics.clear()
        self._windows.clear()
        old = self._pubsub
        self._pubsub = self._client.pubsub()
        try:
            await old.aclose()
        except Exception:
            logger.debug("closing a broken live pub/sub connection failed", exc_info=True)

    @staticmethod
    async def _close(client: LiveClient, code: int) -> None:
        try:
            await asyncio.wait_for(client.send({"type": "websocket.close", "code": code}), 2)
        except Exception:
            logger.debug("closing a dropped live client failed", exc_info=True)

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coroutine)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (uvicorn has one loop per process; each async test its own)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(loop)
    return found


# -- clients --------------------------------------------------------------------------------


def parse_topics(query_string: bytes) -> list[str] | None:
    """The distinct valid topics a page asked for, or None if any is malformed."""
    raw = parse_qs(query_string.decode(errors="replace")).get("topics", [""])[0]
    topics = list(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    if len(topics) > MAX_TOPICS or not all(TOPIC_RE.match(t) for t in topics):
        return None
    return topics


def connected_clients() -> int:
    """Websocket clients connected across every web process (heard from recently)."""
    client = _redis()
    client.zremrangebyscore(CLIENTS_KEY, "-inf", time.time() - CLIENT_TTL_SECONDS)
    return int(client.zcard(CLIENTS_KEY))


def _unwrapped(send: Send) -> Send:
    """The server's own send under Channels' session middleware.

    The middleware's send saves the session on HTTP responses only, yet reads the session
    on every message: ~5% of a web process's CPU when it sends thousands of fragments a
    second (bench/live_fanout). The hub's messages skip it.
    """
    while isinstance(getattr(send, "__self__", None), InstanceSessionWrapper):
        send = send.__self__.real_send  # type: ignore[attr-defined]
    return send


class LiveConsumer(AsyncWebsocketConsumer):
    """One websocket per page; the hub sends it the fragments of the topics the page shows."""

    # Fragments come from the hub, not the channel layer: no per-client channel (a Redis
    # subscription and a receive task each) is needed. The layer stays configured for others.
    channel_layer_alias = "signalbox-live-consumers-use-the-hub"

    client: LiveClient | None = None

    async def connect(self) -> None:
        self.client_id = uuid.uuid4().hex
        # Accept before closing: a close before accept is an HTTP 403 to the browser, which
        # cannot tell it from a network error and would retry forever. 44xx tells it why.
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        topics = parse_topics(self.scope.get("query_string", b""))
        if topics is None:
            await self.accept()
            await self.close(code=CLOSE_BAD_TOPICS)
            return
        try:
            # Subscribed before the page hears "open": nothing pushed after that is missed.
            self.client = await hub().join(topics, _unwrapped(self.base_send))
        except redis.RedisError:
            logger.warning("live updates unavailable: Redis unreachable", exc_info=True)
            await self.accept()
            await self.close(code=CLOSE_LIVE_UNAVAILABLE)
            return
        await self.accept()
        self.client.start()
        await self._seen()

    async def disconnect(self, code: int) -> None:
        if self.client is not None:
            self.client.hub.leave(self.client)
            await self._gone()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Pages only listen; their "ping" keeps proxies from closing an idle socket, lets
        # the page notice a dead one, and keeps this client counted.
        if text_data == "ping":
            await self.send(text_data="pong")
            if self.client is not None:
                await self._seen()

    async def _seen(self) -> None:
        try:
            await _async_redis().zadd(CLIENTS_KEY, {self.client_id: time.time()})
        except redis.RedisError:
            logger.warning("could not record live client %s", self.client_id, exc_info=True)

    async def _gone(self) -> None:
        try:
            await _async_redis().zrem(CLIENTS_KEY, self.client_id)
        except redis.RedisError:
            logger.warning("could not forget live client %s", self.client_id, exc_info=True)


# -- the timeline ---------------------------------------------------------------------------


def render_event_row(event: Event) -> str:
    return render_to_string("partials/event_row_oob.html", {"event": event})


@renders("")
def _timeline(event: Event) -> Iterable[Fragment]:
    """Every event goes to the live timeline (the Events page and home's recent events)."""
    return [Lazy("events", lambda: render_event_row(event))]
