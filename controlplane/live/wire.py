"""The wire between publishers and web processes: topic names, their Redis channels, the
message format, and which topics some page watches.

A topic's channel is the one Channels' `RedisPubSubChannelLayer` used for the topic's group,
and a message is that layer's wire format (msgpack `{"type": "live.fragment", "html"}`), so
processes of the previous release interoperate during a rolling deploy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

import msgpack
import redis
from django.conf import settings

from controlplane import redis as redis_clients

logger = logging.getLogger(__name__)


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
    return f"{channel_prefix()}__group__{group}"


def channel_prefix() -> str:
    layer = cast(dict[str, Any], settings.CHANNEL_LAYERS.get("default", {}))
    return str(cast(dict[str, Any], layer.get("CONFIG", {})).get("prefix", "asgi"))


def encode(html: str) -> bytes:
    return cast(bytes, msgpack.packb({"type": "live.fragment", "html": html}))


def decode(data: bytes) -> str:
    return cast(str, msgpack.unpackb(data)["html"])


def push(topic: str, html: str) -> None:
    """Send one rendered fragment to every page subscribed to `topic`, in every web process."""
    # One PUBLISH on a pooled connection (~0.07 ms); each web process's hub fans it out.
    redis_clients.client().publish(topic_channel(topic), encode(html))


def watched(topics: Iterable[str]) -> set[str]:
    """The topics some web process has a page subscribed to (all of them when unsure)."""
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return set()
    channels = {topic_channel(topic): topic for topic in wanted}
    try:
        counts = redis_clients.client().pubsub_numsub(*channels)
    except redis.RedisError:
        logger.warning("could not tell which live topics are watched", exc_info=True)
        return set(wanted)
    return {channels[_text(channel)] for channel, count in counts if count}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

