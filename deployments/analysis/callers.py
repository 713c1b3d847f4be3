"""What callers see of a service: each caller's figures now against before, held to limits.

Pure arithmetic, no database: the dependents provider reads the figures (circuits' reports)
and hands them here. A figure is a percent of calls failed or slow, or a p99 in ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_FAILURE_RATE = 5.0  # percent of a caller's calls to the service that fail
DEFAULT_MAX_FAILURE_RATE_INCREASE = 5.0  # points over the same caller's figure before
DEFAULT_MAX_SLOW_CALL_RATE_INCREASE = 10.0  # points of calls slower than the caller's limit
DEFAULT_MIN_CALLS = 20  # fewer calls in a caller's reports is no evidence either way

# Each setting: (lowest, highest, whether the lowest itself is refused); None: no bound.
BOUNDS: dict[str, tuple[float, float | None, bool]] = {
    "max_failure_rate": (0, 100, False),
    "max_failure_rate_increase": (0, 100, False),
    "max_slow_call_rate": (0, 100, False),
    "max_slow_call_rate_increase": (0, 100, False),
    "max_latency_increase_ms": (0, None, False),
    "max_latency_ratio": (0, None, True),
    "min_calls": (1, None, False),
}


def bound_errors(metric: dict[str, Any], at: str) -> list[str]:
    """Each setting outside its range, as `at.setting: ...` (types are checked before)."""
    errors = []
    for key, (low, high, exclusive) in BOUNDS.items():
        value = metric.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        too_low = value <= low if exclusive else value < low
        if not too_low and (high is None or value <= high):
            continue
        kind = "a whole number" if key == "min_calls" else "a number"
        if high is not None:
            errors.append(f"{at}.{key}: {kind} from {low:g} to {high:g}")
        else:
            errors.append(f"{at}.{key}: {kind} {'>' if exclusive else '>='} {low:g}")
    return errors


@dataclass(frozen=True)
class Limits:
    """The thresholds one dependents metric holds each caller to; None: not checked."""

    max_failure_rate: float | None = DEFAULT_MAX_FAILURE_RATE
    max_failure_rate_increase: float | None = DEFAULT_MAX_FAILURE_RATE_INCREASE
    max_slow_call_rate: float | None = None
    max_slow_call_rate_increase: float | None = DEFAULT_MAX_SLOW_CALL_RATE_INCREASE
    max_latency_increase_ms: float | None = None
    max_latency_ratio: float | None = None
    min_calls: int = DEFAULT_MIN_CALLS

    @classmethod
    def of(cls, metric: dict[str, Any]) -> Limits:
        defaults = cls()

        def number(key: str) -> float | None:
            value = metric.get(key, getattr(defaults, key))
            return None if value is None else float(value)

        return cls(
            max_failure_rate=number("max_failure_rate"),
            max_failure_rate_increase=number("max_failure_rate_increase"),
            max_slow_call_rate=number("max_slow_call_rate"),
            max_slow_call_rate_increase=number("max_slow_call_rate_increase"),
            max_latency_increase_ms=number("max_latency_increase_ms"),
            max_latency_ratio=number("max_latency_ratio"),
            min_calls=int(metric.get("min_calls", defaults.min_calls)),
        )

    @property
    def reads_latency(self) -> bool:
        return self.max_latency_increase_ms is not None or self.max_latency_ratio is not None

    def describe(self) -> str:
        """The limits in a few words, for the measurement's threshold column."""
        parts = [
            _rate_limits("failures", self.max_failure_rate, self.max_failure_rate_increase),
            _rate_limits("slow", self.max_slow_call_rate, self.max_slow_call_rate_increase),
            _latency_limits(self.max_latency_increase_ms, self.max_latency_ratio),
        ]
        shown = [p for p in parts if p]
        return "per caller: " + ("; ".join(shown) or "no limits") + f"; >= {self.min_calls} calls"


@dataclass(frozen=True)
class Figures:
    """A caller's figures over some reports: percent failed, percent slow, p99 in ms."""

    calls: int
    failure_rate: float | None
    slow_call_rate: float | None
    latency_p99_ms: float | None

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Figures | None:
        if not data:
            return None
        return cls(
            int(data.get("calls") or 0),
            data.get("failure_rate"),
            data.get("slow_call_rate"),
            data.get("latency_p99_ms"),
        )


def problems(edge: str, now: Figures, before: Figures | None, limits: Limits) -> list[str]:
    """Each limit the caller's figures now broke, in words; `edge` is "caller → callee".

    A rate is held to its absolute maximum only if the caller was within it before (what
    was already over it is not blamed on the new version; getting worse still is, by the
    increase), and to its increase only when there is a figure from before.
    """
    found = []
    failure = _rate(
        "failures",
        now.failure_rate,
        before.failure_rate if before else None,
        limits.max_failure_rate,
        limits.max_failure_rate_increase,
    )
    slow = _rate(
        "slow calls",
        now.slow_call_rate,
        before.slow_call_rate if before else None,
        limits.max_slow_call_rate,
        limits.max_slow_call_rate_increase,
    )
    latency = _latency(
        now.latency_p99_ms,
        before.latency_p99_ms if before else None,
        limits.max_latency_increase_ms,
        limits.max_latency_ratio,
    )
    for broken in (failure, slow, latency):
        if broken:
            found.append(f"{edge} {broken}")
    return found


def summary(edge: str, now: Figures, before: Figures | None) -> str:
    """A caller within its limits, in a few words."""
    was = before.failure_rate if before else None
    then = f" vs {pct(was)} before" if was is not None else ""
    rate = pct(now.failure_rate) if now.failure_rate is not None else "n/a"
    return f"{edge} failures {rate}{then} over {now.calls} calls"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value, 1):g} %"


def _rate(
    what: str,
    now: float | None,
    before: float | None,
    max_abs: float | None,
    max_increase: float | None,
) -> str | None:
    if now is None:
        return None
    over_max = max_abs is not None and now > max_abs and (before is None or before <= max_abs)
    over_increase = max_increase is not None and before is not None and now - before > max_increase
    if not (over_max or over_increase):
        return None
    was = f"vs {pct(before)} before" if before is not None else "(no figure from before)"
    return f"{what} {pct(now)} {was} ({_rate_limits('', max_abs, max_increase).strip()})"


def _latency(
    now: float | None, before: float | None, max_increase: float | None, max_ratio: float | None
) -> str | None:
    if now is None or before is None:
        return None
    over_increase = max_increase is not None and now - before > max_increase
    over_ratio = max_ratio is not None and before > 0 and now > max_ratio * before
    if not (over_increase or over_ratio):
        return None
    limits = _latency_limits(max_increase, max_ratio).removeprefix("p99 ")
    return f"p99 {now:.0f} ms vs {before:.0f} ms before ({limits})"


def _rate_limits(what: str, max_abs: float | None, max_increase: float | None) -> str:
    parts = []
    if max_abs is not None:
        parts.append(f"max {max_abs:g} %")
    if max_increase is not None:
        parts.append(f"+{max_increase:g} pp")
    return f"{what} {', '.join(parts)}" if parts else ""


def _latency_limits(max_increase: float | None, max_ratio: float | None) -> str:
    parts = []
    if max_increase is not None:
        parts.append(f"max +{max_increase:g} ms")
    if max_ratio is not None:
        parts.append(f"max x{max_ratio:g}")
    return f"p99 {', '.join(parts)}" if parts else ""
