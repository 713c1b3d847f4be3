"""Live dashboard: the websocket consumer, and fragments rendered once per change and pushed.

A page connects to `/ws/live/?topics=a,b` and joins one group per topic. When an event
commits, every renderer registered for its action returns what it changes: `(topic, html)`
pairs pushed as they are, or `Tile`s, which show current state and are rendered at most
once per key per short window however many events arrive (see `push_coalesced`). Each
fragment is rendered once and sent to the topic's group; htmx swaps it in out-of-band.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict, cast
from urllib.parse import parse_qs

import redis
import redis.asyncio as aioredis
from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
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

CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_TOPICS = 4400


class FragmentMessage(TypedDict):
    type: str
    html: str


@dataclass(frozen=True)
class Tile:
    """A fragment showing current state: rendered at most once per (topic, key) per window."""

    topic: str
    key: str
    render: Callable[[], str]


Fragment = tuple[str, str] | Tile
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


def push(topic: str, html: str) -> None:
    """Send one rendered fragment to every page subscribed to `topic`."""
    message: FragmentMessage = {"type": "live.fragment", "html": html}
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, RedisPubSubChannelLayer):
        # The layer's own group_send needs an event loop: from sync code that is a new
        # loop and Redis connection per call (~3 ms). Publishing its wire format on a
        # pooled connection costs ~0.07 ms; test_live checks a real consumer receives it.
        _redis().publish(_pubsub_group_channel(group_name(topic)), layer.serialize(message))
        return
    async_to_sync(layer.group_send)(group_name(topic), message)


def _pubsub_group_channel(group: str) -> str:
    config = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"].get("CONFIG", {}))
    return f"{config.get('prefix', 'asgi')}__group__{group}"


def broadcast(event_id: int) -> None:
    """Render each fragment an event changes once, and push it to its topic's group."""
    _discover()
    event = (
        Event.objects.select_related("team", "service", "environment").filter(pk=event_id).first()
    )
    if event is None:
        return
    for prefix, render in _renderers:
        if not event.action.startswith(prefix):
            continue
        try:
            fragments = list(render(event))
        except Exception:
            # One broken renderer must not keep the other tiles from updating.
            logger.exception("live renderer %s failed for event %s", render.__name__, event_id)
            continue
        for fragment in fragments:
            if isinstance(fragment, Tile):
                push_coalesced(fragment.topic, fragment.key, fragment.render)
            else:
                push(*fragment)


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


class LiveConsumer(AsyncWebsocketConsumer):
    """One websocket per page; pushes the fragments of the topics the page shows."""

    joined: list[str]

    async def connect(self) -> None:
        self.joined = []
        # Accept before closing: a close before accept is an HTTP 403 to the browser, which
        # cannot tell it from a network error and would retry forever. 44xx tells it why.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        topics = parse_topics(self.scope.get("query_string", b""))
        if topics is None:
            await self.close(code=CLOSE_BAD_TOPICS)
            return
        self.joined = [group_name(t) for t in topics]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self._seen()

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.joined:
            await self._gone()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Pages only listen; their "ping" keeps proxies from closing an idle socket, lets
        # the page notice a dead one, and keeps this client counted.
        if text_data == "ping":
            await self.send(text_data="pong")
            if self.joined:
                await self._seen()

    async def live_fragment(self, message: FragmentMessage) -> None:
        await self.send(text_data=message["html"])

    async def _seen(self) -> None:
        try:
            await _async_redis().zadd(CLIENTS_KEY, {self.channel_name: time.time()})
        except redis.RedisError:
            logger.warning("could not record live client %s", self.channel_name, exc_info=True)

    async def _gone(self) -> None:
        try:
            await _async_redis().zrem(CLIENTS_KEY, self.channel_name)
        except redis.RedisError:
            logger.warning("could not forget live client %s", self.channel_name, exc_info=True)


# -- the timeline ---------------------------------------------------------------------------


def render_event_row(event: Event) -> str:
    return render_to_string("partials/event_row_oob.html", {"event": event})


@renders("")
def _timeline(event: Event) -> Iterable[Fragment]:
    """Every event goes to the live timeline (the Events page and home's recent events)."""
    return [("events", render_event_row(event))]
