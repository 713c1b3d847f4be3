"""pybreaker integration: a listener that counts and reports, and a breaker that obeys overrides."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pybreaker

from signalbox_client.overrides import FORCED_CLOSED, FORCED_OPEN

if TYPE_CHECKING:
    from signalbox_client.client import Signalbox

T = TypeVar("T")

# pybreaker's state names -> Signalbox's.
STATES = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


@dataclass
class Counts:
    """Outcomes in the rolling window (or in one second of it)."""

    calls: int = 0
    failures: int = 0
    slow: int = 0
    rejected: int = 0

    def add(self, other: Counts) -> None:
        self.calls += other.calls
        self.failures += other.failures
        self.slow += other.slow
        self.rejected += other.rejected


class RollingWindow:
    """Counts per second over the last `seconds`, like Hystrix's rolling statistics.

    Every report carries the whole window, so a report sent early (on a state change) or
    late (after an outage) means the same thing as one sent on schedule.
    """

    def __init__(self, seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._buckets: deque[tuple[int, Counts]] = deque()

    def current(self) -> Counts:
        now = int(self._clock())
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append((now, Counts()))
            self._prune(now)
        return self._buckets[-1][1]

    def total(self) -> Counts:
        self._prune(int(self._clock()))
        total = Counts()
        for _, counts in self._buckets:
            total.add(counts)
        return total

    def _prune(self, now: int) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.seconds:
            self._buckets.popleft()


class SignalboxListener(pybreaker.CircuitBreakerListener):
    """Counts a breaker's calls, failures, slow calls and refusals over a rolling window, and
    has state changes reported at once.

    Every callback is a few integer additions under a lock: nothing here touches the
    network, so the guarded calls never wait on Signalbox.
    """

    def __init__(
        self,
        client: Signalbox,
        *,
        protects: str | None = None,
        slow_call_seconds: float | None = None,
        window_seconds: int = 10,
    ) -> None:
        self.client = client
        self.protects = protects
        self.slow_call_seconds = slow_call_seconds
        self.window_seconds = window_seconds
        self._window = RollingWindow(window_seconds)
        self._lock = threading.Lock()
        self._local = threading.local()

    def before_call(
        self, cb: pybreaker.CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        self._local.started = time.monotonic()
        self._local.admitted = True

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._finished(failed=False)

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self._finished(failed=True)

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self.client._state_changed()

    def rejected(self) -> None:
        with self._lock:
            self._window.current().rejected += 1

    def window(self) -> Counts:
        """The counts of the rolling window."""
        with self._lock:
            return self._window.total()

    def _finished(self, *, failed: bool) -> None:
        started = getattr(self._local, "started", None)
        slow = (
            self.slow_call_seconds is not None
            and started is not None
            and time.monotonic() - started >= self.slow_call_seconds
        )
        with self._lock:
            counts = self._window.current()
            counts.calls += 1
            counts.failures += failed
            counts.slow += slow

    def admitted_since_reset(self) -> bool:
        admitted = bool(getattr(self._local, "admitted", False))
        self._local.admitted = False
        return admitted


class SignalboxBreaker(pybreaker.CircuitBreaker):
    """A pybreaker.CircuitBreaker that reports to Signalbox and obeys its overrides.

    Forced open: calls are refused at once with CircuitBreakerError. Forced closed: calls
    always go through, whatever the breaker's own state (resilience4j calls this
    "disabled"). Otherwise it is exactly pybreaker.
    """

    def __init__(
        self,
        client: Signalbox,
        name: str,
        *,
        protects: str | None = None,
        slow_call_seconds: float | None = None,
        window_seconds: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.signalbox = SignalboxListener(
            client,
            protects=protects,
            slow_call_seconds=slow_call_seconds,
            window_seconds=window_seconds,
        )
        self.add_listener(self.signalbox)
        self._overrides = client.overrides

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        forced = self._overrides.for_circuit(self.name or "")
        if forced is not None and forced.state == FORCED_OPEN:
            self.signalbox.rejected()
            raise pybreaker.CircuitBreakerError(f"forced open by Signalbox: {forced.reason}")
        if forced is not None and forced.state == FORCED_CLOSED:
            return self._call_through(func, *args, **kwargs)
        self.signalbox.admitted_since_reset()
        try:
            return super().call(func, *args, **kwargs)
        except pybreaker.CircuitBreakerError:
            # Refused without a call (open): the listener never saw it start.
            if not self.signalbox.admitted_since_reset():
                self.signalbox.rejected()
            raise

    def _call_through(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.signalbox.before_call(self, func)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            if self.is_system_error(exc):
                self.signalbox.failure(self, exc)
            else:
                self.signalbox.success(self)
            raise
        self.signalbox.success(self)
        return result


def reported_state(breaker: pybreaker.CircuitBreaker, forced: str | None) -> str:
    """The state to report: the override when one holds, else the breaker's own."""
    if forced == FORCED_OPEN:
        return "forced_open"
    if forced == FORCED_CLOSED:
        return "disabled"
    return STATES.get(breaker.current_state, "closed")
