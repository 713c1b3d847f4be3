"""The control plane's settings with channels-redis's default layer, for comparison only.

`RedisChannelLayer` sends a group message to each member's channel (one list push per
client); the configured `RedisPubSubChannelLayer` publishes once per group.
"""

from __future__ import annotations

from controlplane.settings import *  # noqa: F403
from controlplane.settings import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "signalbox-bench-core", "capacity": 10_000},
    }
}
