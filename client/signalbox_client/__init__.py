"""signalbox-client: report circuit breakers to Signalbox, obey its overrides, serve /health,
take part in scale-in (drain, work in flight, ready to terminate, protection, metrics), and
follow runtime config live (ConfigWatcher: flags, values, secrets, log levels)."""

from __future__ import annotations

from signalbox_client.breaker import SignalboxBreaker, SignalboxListener
from signalbox_client.client import Signalbox
from signalbox_client.config import ConfigWatcher
from signalbox_client.health import CONTENT_TYPE, Health, HealthASGI, HealthWSGI
from signalbox_client.lifecycle import Drain
from signalbox_client.overrides import FORCED_CLOSED, FORCED_OPEN
from signalbox_client.tracing import TraceASGI, TraceContext, TraceWSGI, inject

__all__ = [
    "CONTENT_TYPE",
    "FORCED_CLOSED",
    "FORCED_OPEN",
    "ConfigWatcher",
    "Drain",
    "Health",
    "HealthASGI",
    "HealthWSGI",
    "Signalbox",
    "SignalboxBreaker",
    "SignalboxListener",
    "TraceASGI",
    "TraceContext",
    "TraceWSGI",
    "inject",
]
__version__ = "0.1.0"
