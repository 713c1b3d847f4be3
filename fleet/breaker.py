"""A small circuit breaker with resilience4j's semantics: a failure-rate threshold over a
rolling time window, a wait in open, a few trial calls in half-open."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class CircuitState(StrEnum):
    """resilience4j's states, spelled the way its Prometheus exposition spells them."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


# States an operator may put a breaker in by hand; the others it reaches by itself.
MANUAL_STATES = (
    CircuitState.CLOSED,
    CircuitState.FORCED_OPEN,
    CircuitState.DISABLED,
    CircuitState.METRICS_ONLY,
)

# Latency samples kept per one-second bucket: bounds memory under heavy traffic while
# keeping percentiles meaningful (1,000 samples a second is plenty for p99).
MAX_SAMPLES_PER_BUCKET = 1000


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds, with demo-friendly defaults (resilience4j waits 60 s; a demo should not)."""

    failure_rate_threshold: float = 50.0  # percent of failed calls that opens the circuit
    slow_call_rate_threshold: float = 100.0  # percent of slow calls that opens it
    slow_call_duration: float = 1.0  # seconds; a call at least this long is slow
    window_seconds: int = 10  # the rolling window the rates are computed over
    minimum_calls: int = 10  # no verdict (rate -1) below this many calls in the window
    wait_in_open: float = 10.0  # seconds open before trial calls are let through
    half_open_calls: int = 3  # trial calls in half-open that decide open or closed


@dataclass
class Bucket:
    """Outcomes of the calls that finished within one second."""

    second: int
    successes: int = 0
    failures: int = 0
    slow: int = 0
    not_permitted: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Snapshot:
    """What the breaker looks like now, as metrics exporters need it."""

    name: str
    state: CircuitState
    failure_rate: float  # percent, -1 when there are fewer calls than the minimum
    slow_call_rate: float  # percent, -1 likewise
    successes: int  # in the rolling window
    failures: int
    slow: int
    not_permitted: int
    latencies: list[float]  # seconds, sorted, in the rolling window
    total_successes: int  # since the breaker was created
    total_failures: int
    total_success_seconds: float
    total_failure_seconds: float
    total_not_permitted: int

    def latency_percentile(self, percent: float) -> float:
        """Nearest-rank percentile of the window's latencies in seconds (0 without calls)."""
        if not self.latencies:
            return 0.0
        rank = max(1, math.ceil(percent / 100 * len(self.latencies)))
        return self.latencies[min(rank, len(self.latencies)) - 1]


Transition = Callable[[str, CircuitState, CircuitState], None]


class CircuitBreaker:
    """Guards calls to one dependency: `if breaker.acquire(): ...; breaker.record(...)`."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._on_transition = on_transition
        self._state = CircuitState.CLOSED
        self._opened_at = 0.0
        self._rates_at_open = (-1.0, -1.0)
        self._buckets: list[Bucket] = []
        self._trials_permitted = 0
        self._trials_done: list[tuple[bool, bool]] = []  # (ok, slow)
        self.total_successes = 0
        self.total_failures = 0
        self.total_success_seconds = 0.0
        self.total_failure_seconds = 0.0
        self.total_not_permitted = 0

    @property
    def state(self) -> CircuitState:
        # Open becomes half-open by the clock alone, so exporters show half_open as soon
        # as trial calls would be let through (resilience4j's automatic transition).
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.config.wait_in_open
        ):
            self._move(CircuitState.HALF_OPEN)
        return self._state

    def acquire(self) -> bool:
        """May a call go through now? A refusal is counted as not permitted."""
        state = self.state
        if state is CircuitState.HALF_OPEN:
            if self._trials_permitted < self.config.half_open_calls:
                self._trials_permitted += 1
                return True
        elif state not in (CircuitState.OPEN, CircuitState.FORCED_OPEN):
            return True
        self._bucket().not_permitted += 1
        self.total_not_permitted += 1
        return False

    def release(self) -> None:
        """A permitted call ended without an outcome (cancelled): in half-open, its trial
        permit goes back, or the circuit would wait for that trial forever."""
        if self._state is CircuitState.HALF_OPEN and self._trials_permitted > 0:
            self._trials_permitted -= 1

    def record(self, duration: float, ok: bool) -> None:
        """Record the outcome of a permitted call that took `duration` seconds."""
        state = self.state
        if state is CircuitState.DISABLED:
            return
        bucket = self._bucket()
        if ok:
            bucket.successes += 1
            self.total_successes += 1
            self.total_success_seconds += duration
        else:
            bucket.failures += 1
            self.total_failures += 1
            self.total_failure_seconds += duration
        if duration >= self.config.slow_call_duration:
            bucket.slow += 1
        if len(bucket.latencies) < MAX_SAMPLES_PER_BUCKET:
            bucket.latencies.append(duration)
        if state is CircuitState.HALF_OPEN:
            self._judge_trial(ok, duration)
        elif state is CircuitState.CLOSED and self._tripped():
            self._open()

    def force(self, state: CircuitState) -> None:
        """An operator's override: forced_open, disabled, metrics_only, or back to closed."""
        if state not in MANUAL_STATES:
            raise ValueError(f"a breaker cannot be put in {state} by hand")
        self._buckets.clear()
        self._move(state)

    def snapshot(self) -> Snapshot:
        state = self.state
        buckets = self._window()
        successes = sum(b.successes for b in buckets)
        failures = sum(b.failures for b in buckets)
        slow = sum(b.slow for b in buckets)
        calls = successes + failures
        minimum = (
            self.config.half_open_calls
            if state is CircuitState.HALF_OPEN
            else self.config.minimum_calls
        )
        enough = calls >= minimum and calls > 0
        failure_rate = round(100.0 * failures / calls, 2) if enough else -1.0
        slow_call_rate = round(100.0 * slow / calls, 2) if enough else -1.0
        if state is CircuitState.OPEN:
            # The window ages while the circuit is open; show the rates that opened it.
            failure_rate, slow_call_rate = self._rates_at_open
        return Snapshot(
            name=self.name,
            state=state,
            failure_rate=failure_rate,
            slow_call_rate=slow_call_rate,
            successes=successes,
            failures=failures,
            slow=slow,
            not_permitted=sum(b.not_permitted for b in buckets),
            latencies=sorted(x for b in buckets for x in b.latencies),
            total_successes=self.total_successes,
            total_failures=self.total_failures,
            total_success_seconds=self.total_success_seconds,
            total_failure_seconds=self.total_failure_seconds,
            total_not_permitted=self.total_not_permitted,
        )

    def mean_latency(self) -> float | None:
        """Mean seconds of the window's calls, or None without calls; cheaper than a
        snapshot, for health documents that are fetched far more often than metrics."""
        total = 0.0
        count = 0
        for bucket in self._window():
            total += sum(bucket.latencies)
            count += len(bucket.latencies)
        return total / count if count else None

    def _judge_trial(self, ok: bool, duration: float) -> None:
        self._trials_done.append((ok, duration >= self.config.slow_call_duration))
        trials = len(self._trials_done)
        if trials < self.config.half_open_calls:
            return
        failed = sum(1 for ok_, _ in self._trials_done if not ok_)
        slow = sum(1 for _, slow_ in self._trials_done if slow_)
        if (
            100.0 * failed / trials >= self.config.failure_rate_threshold
            or 100.0 * slow / trials >= self.config.slow_call_rate_threshold
        ):
            self._open()
        else:
            self._buckets.clear()
            self._move(CircuitState.CLOSED)

    def _tripped(self) -> bool:
        buckets = self._window()
        failures = sum(b.failures for b in buckets)
        calls = failures + sum(b.successes for b in buckets)
        if calls < self.config.minimum_calls or calls == 0:
            return False
        slow = sum(b.slow for b in buckets)
        return (
            100.0 * failures / calls >= self.config.failure_rate_threshold
            or 100.0 * slow / calls >= self.config.slow_call_rate_threshold
        )

    def _open(self) -> None:
        buckets = self._window()
        failures = sum(b.failures for b in buckets)
        calls = max(1, failures + sum(b.successes for b in buckets))
        slow = sum(b.slow for b in buckets)
        self._rates_at_open = (round(100.0 * failures / calls, 2), round(100.0 * slow / calls, 2))
        self._opened_at = self._clock()
        self._move(CircuitState.OPEN)

    def _move(self, to: CircuitState) -> None:
        before = self._state
        self._state = to
        self._trials_permitted = 0
        self._trials_done = []
        if to is CircuitState.HALF_OPEN:
            self._buckets.clear()
        if before is not to and self._on_transition is not None:
            self._on_transition(self.name, before, to)

    def _bucket(self) -> Bucket:
        second = int(self._clock())
        if not self._buckets or self._buckets[-1].second != second:
            self._buckets.append(Bucket(second))
            self._prune(second)
        return self._buckets[-1]

    def _window(self) -> list[Bucket]:
        self._prune(int(self._clock()))
        return self._buckets

    def _prune(self, second: int) -> None:
        oldest = second - self.config.window_seconds + 1
        while self._buckets and self._buckets[0].second < oldest:
            self._buckets.pop(0)
