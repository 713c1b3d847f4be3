"""The traffic router interface, and the retries, backoff and breaker every driver shares."""

from __future__ import annotations

import logging
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from controlplane import redis as redis_clients

logger = logging.getLogger(__name__)

T = TypeVar("T")

BREAKER_THRESHOLD = 5  # consecutive failed calls (after their retries) that open the breaker
BREAKER_COOLDOWN = 15.0  # seconds the breaker stays open before letting one call try
# A breaker found closed is not read again for this long by the same driver object (a
# driver lives for one step, one drift pass): another worker opening it meanwhile is seen
# that much later. Saves 3 of the 4 Redis round trips of an HAProxy step.
BREAKER_RECHECK = 1.0
BACKOFF_BASE = 0.1  # seconds before the first retry; doubles each retry, plus jitter


class DriverError(Exception):
    """The router did not do what was asked; the message says what and why, for the operator."""


class TransientError(DriverError):
    """A failure worth retrying: a timeout, a refused connection, a throttled API."""


@dataclass(frozen=True)
class Target:
    """An instance as a router sees it."""

    host: str
    port: int
    instance_id: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Split:
    """What to apply: the new version's share in percent, and who serves each side."""

    canary_percent: int
    stable: tuple[Target, ...]
    canary: tuple[Target, ...]


@dataclass
class Applied:
    """What the router reports after a change: the new version's share and the raw weights."""

    canary_percent: float
    weights: dict[str, Any] = field(default_factory=dict)


@dataclass
class TargetStats:
    """Per-target counters from the router (cumulative since it started, except rtime)."""

    address: str
    sessions: int = 0
    responses: int = 0
    responses_2xx: int = 0
    responses_5xx: int = 0
    rtime_ms: float | None = None  # average over the router's recent requests
    status: str = ""
    request_rate: float | None = None  # sessions per second over the last second (HAProxy `rate`)


@dataclass(frozen=True)
class Member:
    """One member of a pool, as a router holds it or as someone wants it: a server of an
    HAProxy backend, a target of an ALB target group, a target group of an ALB forward."""

    weight: int | None = None  # None: the router keeps no weight for it (an ALB target)
    serving: bool = True  # False: drained or in maintenance, so it takes no new requests
    name: str = ""  # the router's own name for it (an HAProxy server's), when observed

    @property
    def takes_traffic(self) -> bool:
        return self.serving and self.weight != 0

    def describe(self) -> str:
        parts = [] if self.weight is None else [f"weight {self.weight}"]
        if not self.serving:
            parts.append("drained")
        return " ".join(parts) or "present"


# A stray member of an exclusive pool should take no traffic (weight 0, drained or gone).
NO_TRAFFIC = Member(weight=0)


@dataclass
class Pool:
    """What is wanted of one pool: members by key (an address, or a target group's ARN) and
    whether members it does not list must take no traffic."""

    members: dict[str, Member] = field(default_factory=dict)
    exclusive: bool = True


# pool -> member key -> the member as the router holds it; a pool the router lacks (or an
# empty HAProxy backend) is absent.
Observed = dict[str, dict[str, Member]]


@dataclass(frozen=True)
class Difference:
    """One member of one pool that is not as wanted, and what to make it."""

    pool: str
    member: str
    wanted: Member
    observed: Member | None  # None: the router does not have it

    def describe(self) -> str:
        had = "missing" if self.observed is None else self.observed.describe()
        want = "no traffic" if self.wanted == NO_TRAFFIC else self.wanted.describe()
        return f"{self.pool} {self.member}: {had} -> {want}"

    def to_json(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "member": self.member,
            "wanted": _member_json(self.wanted),
            "observed": None if self.observed is None else _member_json(self.observed),
        }


def _member_json(member: Member) -> dict[str, Any]:
    return {"weight": member.weight, "serving": member.serving}


class Breaker:
    """A circuit breaker shared by every worker through Redis, keyed by router.

    After BREAKER_THRESHOLD consecutive failed calls it refuses calls for BREAKER_COOLDOWN
    seconds; then one call may try (half-open): success closes it, failure reopens it.
    """

    def __init__(self, name: str, client: redis.Redis | None = None) -> None:
        self.key = f"signalbox:breaker:{name}"
        self.client = client or redis_clients.client()
        self.failing = True  # unknown until checked: the first success clears any count
        self.clear_until = 0.0  # monotonic time until which a clear check is taken as still true

    def check(self) -> None:
        if not self.failing and time.monotonic() < self.clear_until:
            # Checked clear a moment ago and no call failed since: one step's several calls
            # (read, set, read back) cost one Redis round trip instead of four.
            return
        state = self.client.hgetall(self.key)
        self.failing = bool(state)
        if not self.failing:
            self.clear_until = time.monotonic() + BREAKER_RECHECK
        until = state.get(b"open_until")
        if until is not None and float(until) > time.time():
            wait = float(until) - time.time()
            raise DriverError(
                f"circuit breaker open after {BREAKER_THRESHOLD} failed calls in a row; "
                f"next try in {wait:.0f}s"
            )

    def success(self) -> None:
        if self.failing:  # most calls succeed after successes: skip the round trip
            self.client.delete(self.key)
            self.failing = False

    def failure(self) -> None:
        self.failing = True
        failures = int(self.client.hincrby(self.key, "failures", 1))
        if failures >= BREAKER_THRESHOLD:
            self.client.hset(self.key, "open_until", time.time() + BREAKER_COOLDOWN)
        self.client.expire(self.key, 3600)


class Driver(ABC):
    """One router, one route (a backend, or a listener rule): read, set, drain, ready, stats.

    Every call is absolute and idempotent: running it twice leaves the same weights.
    """

    def __init__(
        self,
        *,
        name: str,
        connection: dict[str, Any],
        credentials: str,
        route: dict[str, Any],
        timeout: float = 2.0,
        retries: int = 2,
        breaker: Breaker | None = None,
    ) -> None:
        self.name = name
        self.connection = connection
        self.credentials = credentials
        self.route = route
        self.timeout = timeout
        self.retries = retries
        self.breaker = breaker or Breaker(f"router:{name}")

    def prepare(self, split: Split, state: dict[str, Any]) -> dict[str, Any]:
        """Decide anything the rollout must remember about the router (ALB: which group is
        stable). Called before every change; must return `state` unchanged once decided."""
        return state

    @abstractmethod
    def apply(self, split: Split, state: dict[str, Any]) -> Applied:
        """Set the split, read it back, and raise DriverError if the router disagrees."""

    @abstractmethod
    def read(self, split: Split, state: dict[str, Any]) -> Applied:
        """The split the router has now."""

    @abstractmethod
    def drain(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        """Stop sending new requests to these targets; in-flight ones finish."""

    @abstractmethod
    def ready(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        """Undo drain: the targets take traffic again, as their weights say."""

    @abstractmethod
    def stats(self, targets: tuple[Target, ...], state: dict[str, Any]) -> dict[str, TargetStats]:
        """Counters per target address; targets the router knows nothing about are left out."""

    def forget(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        """Remove stopped targets from the router's configuration (a scale-in's last step).
        Routers whose targets come and go by themselves need not do anything."""
        return None

    # True for routers whose stats are per side and over time (an ALB's target groups in
    # CloudWatch) rather than cumulative per target: lb_stats then calls group_stats.
    windowed_stats = False

    def group_stats(self, state: dict[str, Any], seconds: int) -> dict[str, TargetStats]:
        """Per side ("stable", "canary"), what the router saw over the last `seconds`; a side
        without data is left out. Only for drivers with `windowed_stats`."""
        raise DriverError(f"{type(self).__name__} keeps no stats per side over time")

    # -- reconciling: what the router should hold, what it holds, and putting it right --

    def wanted_pools(
        self, split: Split | None, drained: tuple[Target, ...], state: dict[str, Any]
    ) -> dict[str, Pool]:
        """The pools and members this route needs for `split` (as `apply` would leave them)
        and with `drained` taking no new requests. {} for a driver that is not reconciled."""
        return {}

    def observe(self, pools: Collection[str]) -> Observed:
        """The router's state in one read: at least the `pools` named, as `wanted_pools`
        names them. The router is read whole where it allows (HAProxy: every backend)."""
        raise DriverError(f"{type(self).__name__} cannot observe its router")

    def repair(self, differences: list[Difference], wanted: dict[str, Pool]) -> None:
        """Make each differing member as wanted (absolute, so a repeat changes nothing);
        `wanted` is the whole of each pool, for routers that set a pool at once (ALB)."""
        raise DriverError(f"{type(self).__name__} cannot repair its router")

    def call(self, operation: str, fn: Callable[[], T]) -> T:
        """Run one router call with the breaker, retries on transient errors, and backoff."""
        self.breaker.check()
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                result = fn()
            except TransientError as exc:
                if attempt + 1 < attempts:
                    time.sleep(BACKOFF_BASE * 2**attempt * (1 + random.random() / 2))
                    continue
                self.breaker.failure()
                logger.warning(
                    "router %s: %s failed %d times: %s", self.name, operation, attempts, exc
                )
                raise DriverError(
                    f"{operation} on {self.name} failed {attempts} times: {exc}"
                ) from exc
            self.breaker.success()
            return result
        raise AssertionError("unreachable")


def canary_share(weights_stable: list[int], weights_canary: list[int]) -> float:
    """The canary's share of traffic in percent, given the weight of each server on each side."""
    total = sum(weights_stable) + sum(weights_canary)
    if total == 0:
        return 0.0
    return round(100.0 * sum(weights_canary) / total, 2)


def split_weights(
    percent: int, stable_count: int, canary_count: int, maximum: int = 256
) -> tuple[int, int]:
    """Per-server weights (stable, canary) giving the canary side `percent` of the traffic.

    With N stable and M canary servers, stable servers get (100 - p) * M and canary servers
    p * N, reduced by their greatest common divisor: the split is then exact. When a weight
    still exceeds `maximum` (HAProxy's 256), both are scaled down and rounded to the nearest
    whole number, never below 1 for a side that should get traffic, so the achieved share
    can differ slightly; the driver reports the share it read back.
    """
    if not 0 <= percent <= 100:
        raise ValueError("percent must be within 0..100")
    if percent > 0 and canary_count == 0:
        raise DriverError(f"cannot send {percent}% to the new version: it has no instances")
    if percent < 100 and stable_count == 0:
        raise DriverError(f"cannot send {100 - percent}% to stable: it has no instances")
    stable = (100 - percent) * max(canary_count, 1)
    canary = percent * max(stable_count, 1)
    divisor = math.gcd(stable, canary) or 1
    stable, canary = stable // divisor, canary // divisor
    largest = max(stable, canary)
    if largest > maximum:
        factor = maximum / largest
        stable = max(1, round(stable * factor)) if stable else 0
        canary = max(1, round(canary * factor)) if canary else 0
    return stable, canary
