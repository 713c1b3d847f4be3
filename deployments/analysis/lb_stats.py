"""Load balancer stats: the canary's error rate and latency against stable's, from the router."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployments.analysis.base import AnalysisProvider, Context, Result
from deployments.choices import Verdict
from deployments.drivers.base import Target, TargetStats

DEFAULT_MAX_ERROR_RATE = 5.0  # percent of responses that are 5xx
DEFAULT_MIN_REQUESTS = 20  # fewer canary responses in an interval is no evidence either way


@dataclass
class Side:
    responses: int
    errors: int
    rtime_ms: float | None

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.responses if self.responses else 0.0


def _snapshot(stats: dict[str, TargetStats]) -> dict[str, Any]:
    return {a: [s.responses, s.responses_5xx, s.rtime_ms] for a, s in stats.items()}


def _side(targets: tuple[Target, ...], now: dict[str, Any], before: dict[str, Any]) -> Side:
    responses = errors = 0
    rtimes = []
    for target in targets:
        current = now.get(target.address)
        if current is None:
            continue
        previous = before.get(target.address, [0, 0, None])
        # Counters restart from zero when HAProxy reloads: then the whole count is new.
        delta = current[0] - previous[0]
        responses += delta if delta >= 0 else current[0]
        delta_errors = current[1] - previous[1]
        errors += delta_errors if delta_errors >= 0 else current[1]
        if current[2] is not None:
            rtimes.append(current[2])
    return Side(responses, errors, sum(rtimes) / len(rtimes) if rtimes else None)


def _windowed(ctx: Context) -> bool:
    return ctx.driver is not None and ctx.driver.windowed_stats


def window_seconds(metric: dict[str, Any]) -> int:
    """How far back an ALB reading looks: `window_seconds`, else the interval; at least 60."""
    return max(60, int(metric.get("window_seconds") or metric.get("interval") or 60))


class LoadBalancerStats(AnalysisProvider):
    """Compares what the router saw since the previous reading, canary against stable.

    HAProxy's counters are cumulative per server, so a reading diffs them against the
    previous one. An ALB's are per target group and per minute in CloudWatch, so a reading
    sums the last `window_seconds` (default: the metric's interval, at least 60 s) of each
    group. Fails when the canary's 5xx rate exceeds `max_error_rate` (default 5%), or exceeds
    stable's by more than `max_error_rate_increase` points, or its response time exceeds
    `max_latency_ms` or `max_latency_ratio` times stable's. Fewer than `min_requests`
    canary responses is no data.
    """

    def _read(self, ctx: Context) -> dict[str, Any]:
        if ctx.driver is None:
            raise LookupError("this rollout has no traffic router to read stats from")
        return _snapshot(ctx.driver.stats(ctx.stable + ctx.canary, ctx.rollout.router_state))

    def begin(self, ctx: Context) -> dict[str, Any]:
        if _windowed(ctx):
            return {}  # nothing to diff against: each reading is a window of its own
        try:
            return {"counters": self._read(ctx)}
        except Exception:
            return {"counters": {}}

    def measure(self, ctx: Context) -> Result:
        metric = ctx.metric
        max_rate = float(metric.get("max_error_rate", DEFAULT_MAX_ERROR_RATE))
        min_requests = int(metric.get("min_requests", DEFAULT_MIN_REQUESTS))
        threshold = f"5xx <= {max_rate:g}%"
        if _windowed(ctx):
            canary, stable, seen, extra = self._read_window(ctx)
            baseline: dict[str, Any] = {}
            since = f"in the last {extra['window_seconds']} s"
            nothing = "CloudWatch has no AWS/ApplicationELB data for the new version's target group"
        else:
            now = self._read(ctx)
            before = ctx.baseline.get("counters", {})
            canary = _side(ctx.canary, now, before)
            stable = _side(ctx.stable, now, before)
            baseline = {"counters": now}
            seen, extra = bool(now), {}
            since = "since the last reading"
            nothing = "the router reported no stats for these instances"
        detail = {
            "canary": {
                "responses": canary.responses,
                "errors": canary.errors,
                "error_rate": round(canary.error_rate, 2),
                "rtime_ms": canary.rtime_ms,
            },
            "stable": {
                "responses": stable.responses,
                "errors": stable.errors,
                "error_rate": round(stable.error_rate, 2),
                "rtime_ms": stable.rtime_ms,
            },
            **extra,
        }
        if not seen:
            return Result.no_data(
                f"{nothing} {since}" if extra else nothing,
                threshold=threshold,
                baseline=baseline,
                detail=detail,
            )
        if canary.responses < min_requests:
            return Result.no_data(
                f"only {canary.responses} responses from the new version {since} "
                f"(need {min_requests})",
                threshold=threshold,
                baseline=baseline,
                detail=detail,
            )
        value = round(canary.error_rate, 2)
        failures = _problems(metric, canary, stable, max_rate, min_requests)
        if failures:
            return Result(
                Verdict.FAIL,
                "; ".join(failures),
                value=value,
                threshold=threshold,
                detail=detail,
                baseline=baseline,
            )
        return Result(
            Verdict.PASS,
            f"5xx rate {value}% over {canary.responses} responses "
            f"(stable {stable.error_rate:.2f}%)",
            value=value,
            threshold=threshold,
            detail=detail,
            baseline=baseline,
        )

    def _read_window(self, ctx: Context) -> tuple[Side, Side, bool, dict[str, Any]]:
        """(canary, stable, any data for the canary, detail) over the metric's window."""
        assert ctx.driver is not None
        seconds = window_seconds(ctx.metric)
        groups = ctx.driver.group_stats(ctx.rollout.router_state, seconds)
        sides = {name: Side(s.responses, s.responses_5xx, s.rtime_ms) for name, s in groups.items()}
        empty = Side(0, 0, None)
        extra = {"window_seconds": seconds, "source": "cloudwatch"}
        return sides.get("canary", empty), sides.get("stable", empty), "canary" in sides, extra


def _problems(
    metric: dict[str, Any], canary: Side, stable: Side, max_rate: float, min_requests: int
) -> list[str]:
    """Each threshold the canary broke, in words."""
    found = []
    if canary.error_rate > max_rate:
        found.append(f"5xx rate {canary.error_rate:.2f}% > {max_rate:g}%")
    increase = metric.get("max_error_rate_increase")
    gap = canary.error_rate - stable.error_rate
    if increase is not None and stable.responses >= min_requests and gap > float(increase):
        found.append(
            f"5xx rate {canary.error_rate:.2f}% is {gap:.2f} points above stable's "
            f"{stable.error_rate:.2f}% (allowed {float(increase):g})"
        )
    latency = metric.get("max_latency_ms")
    if latency is not None and canary.rtime_ms is not None and canary.rtime_ms > float(latency):
        found.append(f"response time {canary.rtime_ms:g} ms > {float(latency):g} ms")
    ratio = metric.get("max_latency_ratio")
    if (
        ratio is not None
        and canary.rtime_ms is not None
        and stable.rtime_ms
        and canary.rtime_ms > float(ratio) * stable.rtime_ms
    ):
        found.append(
            f"response time {canary.rtime_ms:g} ms > {float(ratio):g}x stable's "
            f"{stable.rtime_ms:g} ms"
        )
    return found
