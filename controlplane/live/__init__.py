"""Live dashboard: renderers say what an event changes, the hub fans fragments out to pages.

A page connects to `/ws/live/?topics=a,b` (`consumer`). When an event commits, every renderer
registered for its action (`registry`) says what it changes; each fragment is rendered once
(`Tile`s at most once per key per window: `coalesce`) and published on its topic's Redis
channel (`wire`). Each web process's hub (`fanout`) has one Redis subscription and writes
the fragments to its pages' websockets, batched per window; htmx swaps each top-level
element in out of band. docs/live.md tells the whole story.
"""

from __future__ import annotations

from controlplane.live.coalesce import COALESCE_WINDOW_SECONDS, push_coalesced
from controlplane.live.consumer import (
    CLIENT_TTL_SECONDS,
    CLIENTS_KEY,
    CLOSE_BAD_TOPICS,
    CLOSE_LIVE_UNAVAILABLE,
    CLOSE_UNAUTHENTICATED,
    MAX_TOPICS,
    TOPIC_RE,
    LiveConsumer,
    connected_clients,
    parse_topics,
)
from controlplane.live.fanout import (
    BATCH_WINDOW_SECONDS,
    CLOSE_LIVE_LOST,
    CLOSE_TOO_SLOW,
    Hub,
    LiveClient,
    hub,
)
from controlplane.live.registry import (
    EVERY_EVENT,
    Fragment,
    Lazy,
    Renderer,
    Tile,
    _discover,
    _renderers,
    broadcast,
    renders,
)
from controlplane.live.wire import (
    _pubsub_group_channel,
    decode,
    encode,
    group_name,
    push,
    topic_channel,
    watched,
)

__all__ = [
    "BATCH_WINDOW_SECONDS",
    "CLIENTS_KEY",
    "CLIENT_TTL_SECONDS",
    "CLOSE_BAD_TOPICS",
    "CLOSE_LIVE_LOST",
    "CLOSE_LIVE_UNAVAILABLE",
    "CLOSE_TOO_SLOW",
    "CLOSE_UNAUTHENTICATED",
    "COALESCE_WINDOW_SECONDS",
    "EVERY_EVENT",
    "MAX_TOPICS",
    "TOPIC_RE",
    "Fragment",
    "Hub",
    "Lazy",
    "LiveClient",
    "LiveConsumer",
    "Renderer",
    "Tile",
    "_discover",
    "_pubsub_group_channel",
    "_renderers",
    "broadcast",
    "connected_clients",
    "decode",
    "encode",
    "group_name",
    "hub",
    "parse_topics",
    "push",
    "push_coalesced",
    "renders",
    "topic_channel",
    "watched",
]
