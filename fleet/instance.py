"""One simulated instance's state: its spec, faults, circuit breakers, leaked memory."""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from dataclasses import dataclass, replace
from typing import Any

from fleet.breaker import BreakerConfig, CircuitBreaker, Transition
from fleet.faults import BAD_VERSION_ERROR_RATE, Faults, is_bad_version
from fleet.plan import InstanceSpec

# The memory an instance may use before it reports fail; a leak stops growing there, so a
# forgotten leak fault cannot take the machine down.
MEMORY_LIMIT_MB = 512
MB = 1024 * 1024
ERROR_WINDOW_SECONDS = 60


@dataclass
class _Second:
    second: int
    calls: int = 0
    errors: int = 0


class CallCounter:
    """Business calls and the ones answered with an error, over the last minute."""

    def __init__(self) -> None:
        self._seconds: list[_Second] = []

    def add(self, error: bool) -> None:
        now = int(time.monotonic())
        if not self._seconds or self._seconds[-1].second != now:
            self._seconds.append(_Second(now))
            self._prune(now)
        self._seconds[-1].calls += 1
        self._seconds[-1].errors += int(error)

    def totals(self) -> tuple[int, int]:
        self._prune(int(time.monotonic()))
        return sum(s.calls for s in self._seconds), sum(s.errors for s in self._seconds)

    def _prune(self, now: int) -> None:
        while self._seconds and self._seconds[0].second <= now - ERROR_WINDOW_SECONDS:
            self._seconds.pop(0)


class Instance:
    """A running (or stopped-listening) instance of a demo service."""

    def __init__(
        self,
        spec: InstanceSpec,
        calls: tuple[str, ...],
        breaker_config: BreakerConfig,
        on_transition: Transition | None = None,
    ) -> None:
        self.spec = spec
        self.faults = Faults()
        self.breakers = {
            name: CircuitBreaker(name, breaker_config, on_transition=on_transition)
            for name in calls
        }
        self.calls = CallCounter()
        self.listening = False
        self.started_at = time.time()
        self.in_flight = 0  # requests being answered now (a drain waits for 0)
        self.draining: dict[str, Any] | None = None  # the drain notice, once told
        self.said_ready_at: float | None = None
        self._leak: list[bytes] = []
        self.leaked_bytes = 0
        self._leak_owed = 0.0
        # Set while the instance answers; cleared while it hangs, so hung requests resume
        # as soon as the hang is lifted.
        self.answering = asyncio.Event()
        self.answering.set()
        # Each instance reports a slightly different baseline, as real processes do.
        self.baseline_mb = 48 + zlib.crc32(spec.id.encode()) % 32

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> str:
        return self.spec.version

    def set_version(self, version: str) -> None:
        """A redeploy in place: new version, fresh process (uptime and leaked memory reset)."""
        self.spec = replace(self.spec, version=version)
        self.restart()

    def restart(self) -> None:
        self.started_at = time.time()
        self._leak.clear()
        self.leaked_bytes = 0
        self._leak_owed = 0.0

    @property
    def error_rate(self) -> float:
        """Percent of business calls to fail: the injected rate plus a bad version's own."""
        rate = self.faults.error_rate / 100
        if is_bad_version(self.version):
            rate = 1 - (1 - rate) * (1 - BAD_VERSION_ERROR_RATE / 100)
        return rate * 100

    def should_fail(self) -> bool:
        rate = self.error_rate
        return rate >= 100 or (rate > 0 and random.random() * 100 < rate)

    @property
    def memory_mb(self) -> float:
        return self.baseline_mb + self.leaked_bytes / MB

    def leak(self, seconds: float, budget_bytes: int) -> int:
        """Allocate what the leak owes for `seconds`, within the limit and the fleet's
        remaining budget; returns the bytes allocated."""
        if self.faults.leak_mb_per_min <= 0:
            return 0
        self._leak_owed += self.faults.leak_mb_per_min * MB * seconds / 60
        room = int((MEMORY_LIMIT_MB - self.baseline_mb) * MB) - self.leaked_bytes
        size = max(0, min(int(self._leak_owed), room, budget_bytes))
        if size <= 0:
            return 0
        self._leak_owed -= size
        # Non-zero bytes, so the pages are really written and show in the process's RSS.
        self._leak.append(b"\xa5" * size)
        self.leaked_bytes += size
        return size

    def to_json(self) -> dict[str, Any]:
        return {
            **self.spec.to_json(),
            "listening": self.listening,
            "in_flight": self.in_flight,
            "draining": self.draining is not None,
            "said_ready": self.said_ready_at is not None,
            "faults": self.faults.to_json(),
            "bad_version": is_bad_version(self.version),
            "started_at": self.started_at,
            "memory_mb": round(self.memory_mb, 1),
            "circuits": {
                name: breaker.state.value for name, breaker in sorted(self.breakers.items())
            },
        }
