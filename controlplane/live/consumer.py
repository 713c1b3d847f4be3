"""The websocket consumer: one per page, authenticated by Channels, fed by the hub."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qs

import redis
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper

from controlplane import redis as redis_clients
from controlplane.live.fanout import LiveClient, Send, hub

logger = logging.getLogger(__name__)

# "events", "service:checkout", "team:payments", "rollout:42"
TOPIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}(:[a-z0-9][a-z0-9._-]{0,80})?$")
MAX_TOPICS = 20
CLIENTS_KEY = "signalbox:live:clients"
# Pages ping every 25 s (static/js/signalbox.js); a client not heard from in three pings is
# gone even if its web process died without saying so.
CLIENT_TTL_SECONDS = 75

CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_TOPICS = 4400
CLOSE_LIVE_UNAVAILABLE = 1011  # Redis unreachable: the page retries with back-off


def parse_topics(query_string: bytes) -> list[str] | None:
    """The distinct valid topics a page asked for, or None if any is malformed."""
    raw = parse_qs(query_string.decode(errors="replace")).get("topics", [""])[0]
    topics = list(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    if len(topics) > MAX_TOPICS or not all(TOPIC_RE.match(t) for t in topics):
        return None
    return topics


def connected_clients() -> int:
    """Websocket clients connected across every web process (heard from recently)."""
    client = redis_clients.client()
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
            await redis_clients.async_client().zadd(CLIENTS_KEY, {self.client_id: time.time()})
        except redis.RedisError:
            logger.warning("could not record live client %s", self.client_id, exc_info=True)

    async def _gone(self) -> None:
        try:
            await redis_clients.async_client().zrem(CLIENTS_KEY, self.client_id)
        except redis.RedisError:
            logger.warning("could not forget live client %s", self.client_id, exc_info=True)

