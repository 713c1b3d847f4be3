"""Live dashboard: the websocket consumer, and fragments rendered once per event and pushed.

A page connects to `/ws/live/?topics=a,b` and joins one group per topic. When an event
commits, every renderer registered for its action returns (topic, html) pairs; each html
is rendered once and sent to the topic's group, where htmx swaps it in out-of-band.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import TypedDict
from urllib.parse import parse_qs

import redis
from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from controlplane.models import Event

logger = logging.getLogger(__name__)

TOPIC_RE = re.compile(r"^[a-z][a-z0-9_]*(:[a-z0-9][a-z0-9._-]{0,80})?$")
MAX_TOPICS = 20
CLIENTS_KEY = "signalbox:live:clients"

Renderer = Callable[[Event], Iterable[tuple[str, str]]]
_renderers: list[tuple[str, Renderer]] = []


class FragmentMessage(TypedDict):
    type: str
    html: str


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
    layer = get_channel_layer()
    if layer is None:
        return
    message: FragmentMessage = {"type": "live.fragment", "html": html}
    async_to_sync(layer.group_send)(group_name(topic), message)


def broadcast(event_id: int) -> None:
    """Render each fragment an event changes once, and push it to its topic's group."""
    event = (
        Event.objects.select_related("team", "service", "environment").filter(pk=event_id).first()
    )
    if event is None:
        return
    for prefix, render in _renderers:
        if event.action.startswith(prefix):
            for topic, html in render(event):
                push(topic, html)


def parse_topics(query_string: bytes) -> list[str] | None:
    """The valid topics a page asked for, or None if any is malformed."""
    raw = parse_qs(query_string.decode(errors="replace")).get("topics", [""])[0]
    topics = [t for t in raw.split(",") if t]
    if len(topics) > MAX_TOPICS or not all(TOPIC_RE.match(t) for t in topics):
        return None
    return topics


def connected_clients() -> int:
    """Websocket clients connected across every web process."""
    value = _redis().get(CLIENTS_KEY)
    return max(int(value or 0), 0)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


class LiveConsumer(AsyncWebsocketConsumer):
    """One websocket per page; pushes the fragments of the topics the page shows."""

    groups: list[str] = []

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        topics = parse_topics(self.scope.get("query_string", b""))
        if topics is None:
            await self.close(code=4400)
            return
        self.joined = [group_name(t) for t in topics]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self._count(1)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "joined", None):
            await self._count(-1)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Pages only listen; a "ping" keeps intermediaries from closing an idle socket.
        if text_data == "ping":
            await self.send(text_data="pong")

    async def live_fragment(self, message: FragmentMessage) -> None:
        await self.send(text_data=message["html"])

    async def _count(self, delta: int) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            await client.incrby(CLIENTS_KEY, delta)
        except Exception:
            logger.warning("could not update the live client count", exc_info=True)
        finally:
            await client.aclose()


def render_event_row(event: Event) -> str:
    from django.template.loader import render_to_string

    return render_to_string("partials/event_row_oob.html", {"event": event})


@renders("")
def _timeline(event: Event) -> Iterable[tuple[str, str]]:
    """Every event goes to the live timeline (the Events page and home's recent events)."""
    return [("events", render_event_row(event))]
