"""What an instance reports about itself through `POST /api/v1/metrics`: its work in flight
(the scaler never chooses a busy instance for scale-in), its deletion cost (the lowest goes
first, like Kubernetes' pod-deletion-cost), and any value the service gives (CPU, memory,
queue length) for its group's metrics.

The service's threads only record values; the background thread sends them in batches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from signalbox_client.buffer import ReportBuffer
from signalbox_client.lifecycle import InFlight
from signalbox_client.transport import Transport, Unreachable, error_message

METRICS_PATH = "/api/v1/metrics"
IN_FLIGHT = "in_flight"
DELETION_COST = "deletion_cost"
# The names the API accepts (scaling/api/serializers.py, ReportedMetricSerializer).
NAME = re.compile(r"^[a-z][a-z0-9_.]{0,99}$")
MAX_BATCH = 1000  # values per POST: the API's limit
MAX_BACKOFF_SECONDS = 60.0


def checked(name: str, value: Any) -> float:
    """The value as the API takes it; a name or value it would refuse raises ValueError."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(
            f"metric name {name!r}: lower case letters, digits, '_' and '.', starting with a "
            "letter, at most 100 characters (e.g. cpu_percent, queue.depth)"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"metric {name}: {value!r} is not a finite number")
    return float(value)


class Metrics:
    """Values waiting to be sent, and when to send them (run by the background thread)."""

    def __init__(
        self,
        transport: Transport,
        in_flight: InFlight,
        *,
        interval: float,
        capacity: int,
        on_error: Callable[[str], None],
    ) -> None:
        self.transport = transport
        self.in_flight = in_flight
        self.interval = interval
        self.pending = ReportBuffer(capacity)
        self._on_error = on_error
        self.deletion_cost: float | None = None
        self._urgent = False
        self._last_in_flight: int | None = None  # as last accepted by Signalbox
        self._next = 0.0
        self._retry_at = 0.0
        self._backoff = 0.0
        self.sent = 0
        self.rejected = 0
        self.failures = 0

    # -- what the service records (any thread) --------------------------------------------------

    def add(self, values: Mapping[str, Any], at: datetime | None = None) -> None:
        when = (at or datetime.now(UTC)).isoformat()
        cleaned = [(name, checked(name, value)) for name, value in values.items()]
        for name, value in cleaned:
            self.pending.add({"name": name, "value": value, "at": when})
        self._urgent = True

    def set_deletion_cost(self, value: Any) -> None:
        self.deletion_cost = None if value is None else checked(DELETION_COST, value)
        self._urgent = True

    def became_busy(self) -> bool:
        """Work started with none in flight: True if Signalbox must hear it now (it may be
        choosing a victim), i.e. unless it already knows this instance is busy."""
        if self._last_in_flight:
            return False
        self._urgent = True
        return True

    # -- the background thread ------------------------------------------------------------------

    def step(self, now: float, instance: dict[str, Any] | None) -> float:
        """Send what is due; returns when to come back (time.monotonic())."""
        if instance is None:
            return now + self.interval
        due = now >= self._next or self._urgent or len(self.pending) > 0
        if due and now >= self._retry_at:
            self.send(instance, now)
        if self._urgent or len(self.pending):
            return max(self._retry_at, now)
        return max(self._next, self._retry_at)

    def send(self, instance: dict[str, Any], now: float) -> None:
        """One batch: the current in-flight count and deletion cost, and pending values."""
        self._urgent = False
        at = datetime.now(UTC).isoformat()
        current: list[dict[str, Any]] = []
        in_flight = self.in_flight.count
        if self.in_flight.tracked:
            current.append({"name": IN_FLIGHT, "value": float(in_flight), "at": at})
        if self.deletion_cost is not None:
            current.append({"name": DELETION_COST, "value": self.deletion_cost, "at": at})
        custom = self.pending.peek(MAX_BATCH - len(current))
        self._next = now + self.interval
        if not current and not custom:
            return
        body = {"metrics": [{**instance, **value} for value in current + custom]}
        try:
            answer = self.transport.request("POST", METRICS_PATH, body)
        except Unreachable as exc:
            self._failed(now, str(exc))
            return
        if answer.status in (200, 202):
            self.pending.discard(custom)
            self.sent += len(body["metrics"])
            self._backoff = 0.0
            if self.in_flight.tracked:
                self._last_in_flight = in_flight
        elif 400 <= answer.status < 500:
            # Sending it again would fail again: drop it, say why.
            self.pending.discard(custom)
            self.rejected += len(body["metrics"])
            self._on_error(f"metrics refused ({answer.status}): {error_message(answer)}")
        else:
            self._failed(now, f"metrics answered {answer.status}")

    def _failed(self, now: float, why: str) -> None:
        self.failures += 1
        self._on_error(why)
        self._urgent = True  # the current values still have to get there
        self._backoff = min(max(self._backoff * 2, 1.0), MAX_BACKOFF_SECONDS)
        self._retry_at = now + self._backoff
