"""ASGI entry point: Django for HTTP, Channels for websockets, served by uvicorn."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
# Django must be set up before Channels and our consumers are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from controlplane.live import LiveConsumer  # noqa: E402
from controlplane.shedding import LoadShedding  # noqa: E402
from debugging.watch_asgi import ConfigFastPath  # noqa: E402
from health.ping_asgi import PingFastPath  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Past SIGNALBOX_MAX_IN_FLIGHT requests a process answers 503 + Retry-After at once
        # (docs/operations.md); heartbeat pings then take a lean path in front of Django
        # (docs/health.md, Heartbeats).
        # Config long-polls are never shed and are answered in front of Django, too
        # (docs/debugging.md, Delivery).
        "http": LoadShedding(
            PingFastPath(ConfigFastPath(django_asgi_app)), limit=settings.SIGNALBOX_MAX_IN_FLIGHT
        ),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/live/", LiveConsumer.as_asgi())]))
        ),
    }
)
