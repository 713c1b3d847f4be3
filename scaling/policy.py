"""The scaling maths, as the Kubernetes HPA (v2) does it, with every step explained.

Pure functions over plain values, so the rules can be checked as properties:

1. `replicas_for` turns one metric's readings into a replica count: `ceil(current * value /
   target)` over the ready instances that reported, inside a tolerance of 0.1; missing
   readings count as the target when scaling down and as 0 when scaling up, and instances
   still inside their readiness delay count as 0 when scaling up, so neither can push the
   fleet the wrong way; the result is abandoned if those assumptions flip its direction.
2. Several metrics: the largest recommendation wins.
3. `stabilize`: scale-down takes the highest recommendation of its window (default 300 s),
   scale-up the lowest of its own (default 0 s), so a dip or a spike alone does nothing.
4. `limit_rate`: the behaviour's policies bound the change per period from the count at the
   period's start (scale-up default: +100 % or +4 instances per 15 s, whichever is more;
   scale-down: -100 % per 15 s), then min and max bound the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

TOLERANCE = 0.1
MAX_REPLICAS_LIMIT = 10_000


@dataclass(frozen=True)
class Reading:
    """One instance's value of a metric (None: it did not report), and whether it counts as
    ready (healthy, and past the readiness delay)."""

    instance: str
    value: float | None
    ready: bool = True


@dataclass(frozen=True)
class MetricInput:
    """A metric and its target: per instance (`average`: CPU %, memory, latency, a custom
    per-instance value) or for the whole group (`total`: a queue's length, a backlog, a
    request rate the router counts), where the target is what one instance should carry."""

    name: str
    target: float
    readings: tuple[Reading, ...] = ()
    total: float | None = None

    @property
    def per_instance(self) -> bool:
        return self.total is None


@dataclass(frozen=True)
class Recommendation:
    """What one metric asks for, and how it got there (shown on the page as is)."""

    metric: str
    replicas: int | None  # None: no usable data for this metric
    ratio: float | None
    formula: str


def replicas_for(metric: MetricInput, current: int, tolerance: float = TOLERANCE) -> Recommendation:
    """The replica count this metric asks for, HPA's `GetMetricReplicas` rules."""
    if metric.target <= 0:
        raise ValueError(f"{metric.name}: the target must be above 0")
    if not metric.per_instance:
        return _for_total(metric, current, tolerance)
    reported = [r for r in metric.readings if r.value is not None]
    ready = [r for r in reported if r.ready]
    if not ready:
        return Recommendation(metric.name, None, None, f"{metric.name}: no ready instance reported")
    usage = sum(r.value for r in ready if r.value is not None) / len(ready)
    ratio = usage / metric.target
    unready = [r for r in reported if not r.ready]
    missing = [r for r in metric.readings if r.value is None]
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Recommendation(
                metric.name,
                current,
                ratio,
                f"{metric.name}: {usage:g} vs target {metric.target:g} "
                f"(ratio {ratio:.2f}, within ±{tolerance:g}): keep {current}",
            )
        wanted = math.ceil(ratio * len(ready))
        return Recommendation(
            metric.name,
            wanted,
            ratio,
            f"{metric.name}: ceil({len(ready)} * {usage:g} / {metric.target:g}) = {wanted}",
        )
    # Assume the conservative value for what is missing, and count the not-yet-ready as idle
    # when scaling up (they will take load soon), then check the direction still holds.
    assumed = [r.value for r in ready if r.value is not None]
    assumed += [metric.target if ratio < 1.0 else 0.0 for _ in missing]
    if scale_up_with_unready:
        assumed += [0.0 for _ in unready]
    new_usage = sum(assumed) / len(assumed)
    new_ratio = new_usage / metric.target
    note = (
        f"{len(missing)} missing counted as {'the target' if ratio < 1.0 else '0'}"
        if missing
        else ""
    )
    if scale_up_with_unready:
        note = ", ".join(filter(None, [note, f"{len(unready)} not ready counted as 0"]))
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Recommendation(
            metric.name,
            current,
            new_ratio,
            f"{metric.name}: {usage:g} vs target {metric.target:g}, {note}: ratio "
            f"{new_ratio:.2f}, keep {current}",
        )
    wanted = math.ceil(new_ratio * len(assumed))
    if (new_ratio < 1.0 and wanted > current) or (new_ratio > 1.0 and wanted < current):
        wanted = current
    return Recommendation(
        metric.name,
        wanted,
        new_ratio,
        f"{metric.name}: ceil({len(assumed)} * {new_usage:g} / {metric.target:g}) = {wanted} "
        f"({note})",
    )


def _for_total(metric: MetricInput, current: int, tolerance: float) -> Recommendation:
    total = metric.total
    assert total is not None
    wanted = math.ceil(total / metric.target)
    ratio = (total / metric.target) / current if current else None
    if ratio is not None and abs(1.0 - ratio) <= tolerance:
        return Recommendation(
            metric.name,
            current,
            ratio,
            f"{metric.name}: {total:g} for {current} (target {metric.target:g} each, ratio "
            f"{ratio:.2f}, within ±{tolerance:g}): keep {current}",
        )
    return Recommendation(
        metric.name,
        wanted,
        ratio,
        f"{metric.name}: ceil({total:g} / {metric.target:g} each) = {wanted}",
    )


@dataclass(frozen=True)
class Step:
    """A step policy's interval: while lower <= value < upper, change by `change`."""

    lower: float | None
    upper: float | None
    change: int
    kind: str = "instances"  # or "percent" of the current count

    def holds(self, value: float) -> bool:
        return (self.lower is None or value >= self.lower) and (
            self.upper is None or value < self.upper
        )


def step_replicas(metric: MetricInput, steps: Sequence[Step], current: int) -> Recommendation:
    """A step policy (AWS step scaling): the interval the metric's value falls in sets the
    change; no interval, or no data, changes nothing."""
    value = metric.total
    if metric.per_instance:
        ready = [r.value for r in metric.readings if r.ready and r.value is not None]
        value = sum(ready) / len(ready) if ready else None
    if value is None:
        return Recommendation(metric.name, None, None, f"{metric.name}: no data for its steps")
    for step in steps:
        if step.holds(value):
            delta = (
                step.change
                if step.kind == "instances"
                else math.ceil(current * abs(step.change) / 100) * (1 if step.change > 0 else -1)
            )
            wanted = max(0, current + delta)
            low = "-inf" if step.lower is None else f"{step.lower:g}"
            high = "inf" if step.upper is None else f"{step.upper:g}"
            bounds = f"[{low}, {high})"
            return Recommendation(
                metric.name,
                wanted,
                None,
                f"{metric.name}: {value:g} in {bounds}: {delta:+d} -> {wanted}",
            )
    return Recommendation(
        metric.name, current, None, f"{metric.name}: {value:g} in no step: keep {current}"
    )


def combine(recommendations: Sequence[Recommendation], current: int) -> tuple[int | None, str]:
    """The largest recommendation over the metrics that have data (None: none has)."""
    usable = [r for r in recommendations if r.replicas is not None]
    if not usable:
        return None, "no metric has data: keep the current count"
    best = max(usable, key=lambda r: r.replicas or 0)
    return best.replicas, f"largest of {len(usable)} metric(s): {best.metric} asks {best.replicas}"


# -- behaviour: stabilisation and rate limits -------------------------------------------------


@dataclass(frozen=True)
class RatePolicy:
    """HPA's `HPAScalingPolicy`: change by `value` instances or percent per `period` seconds."""

    kind: str  # "instances" (HPA: Pods) or "percent"
    value: int
    period: int

    def to_json(self) -> dict[str, object]:
        return {"type": self.kind, "value": self.value, "period_seconds": self.period}


SELECT_MAX, SELECT_MIN, SELECT_DISABLED = "max", "min", "disabled"


@dataclass(frozen=True)
class Direction:
    """HPA's `HPAScalingRules` for one direction."""

    stabilization_seconds: int
    policies: tuple[RatePolicy, ...]
    select: str = SELECT_MAX


# HPA's defaults (kubernetes.io, Horizontal Pod Autoscaling, "Default Behavior").
DEFAULT_UP = Direction(0, (RatePolicy("percent", 100, 15), RatePolicy("instances", 4, 15)))
DEFAULT_DOWN = Direction(300, (RatePolicy("percent", 100, 15),))


@dataclass(frozen=True)
class Change:
    """A scale event already made: when, and by how many (+ up, - down)."""

    at: datetime
    delta: int


@dataclass(frozen=True)
class Past:
    """A recommendation made earlier, for the stabilisation windows."""

    at: datetime
    replicas: int


def stabilize(
    desired: int,
    current: int,
    history: Iterable[Past],
    up: Direction,
    down: Direction,
    now: datetime,
) -> tuple[int, str]:
    """HPA's `stabilizeRecommendationWithBehaviors`: the value to use, and why if not `desired`."""
    up_floor, down_ceiling = desired, desired
    up_cutoff = now - timedelta(seconds=up.stabilization_seconds)
    down_cutoff = now - timedelta(seconds=down.stabilization_seconds)
    for past in history:
        if past.at > up_cutoff:
            up_floor = min(up_floor, past.replicas)
        if past.at > down_cutoff:
            down_ceiling = max(down_ceiling, past.replicas)
    chosen = max(current, up_floor)
    chosen = min(chosen, down_ceiling)
    if chosen == desired:
        return chosen, ""
    if desired < current:
        return chosen, (
            f"scale-down held at {chosen}: the highest recommendation of the last "
            f"{down.stabilization_seconds} s was {down_ceiling}"
        )
    return chosen, (
        f"scale-up held at {chosen}: the lowest recommendation of the last "
        f"{up.stabilization_seconds} s was {up_floor}"
    )


def _changed_within(events: Iterable[Change], period: int, now: datetime, up: bool) -> int:
    cutoff = now - timedelta(seconds=period)
    return sum(abs(e.delta) for e in events if e.at > cutoff and ((e.delta > 0) == up) and e.delta)


def scale_up_limit(current: int, events: Sequence[Change], rules: Direction, now: datetime) -> int:
    """The most instances the policies allow now (HPA: calculateScaleUpLimitWithScalingRules)."""
    if rules.select == SELECT_DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = (
            current
            - _changed_within(events, policy.period, now, up=True)
            + _changed_within(events, policy.period, now, up=False)
        )
        if policy.kind == "instances":
            proposals.append(start + policy.value)
        else:
            # Rounded up, or a small group could never grow by a percentage.
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    if not proposals:
        return current
    return max(proposals) if rules.select == SELECT_MAX else min(proposals)


def scale_down_limit(
    current: int, events: Sequence[Change], rules: Direction, now: datetime
) -> int:
    """The fewest instances the policies allow now (HPA: calculateScaleDownLimitWithBehaviors)."""
    if rules.select == SELECT_DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = (
            current
            - _changed_within(events, policy.period, now, up=True)
            + _changed_within(events, policy.period, now, up=False)
        )
        if policy.kind == "instances":
            proposals.append(start - policy.value)
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    if not proposals:
        return current
    # The largest change is the lowest count ("max" policy), the smallest the highest.
    return min(proposals) if rules.select == SELECT_MAX else max(proposals)


def limit_rate(
    desired: int,
    current: int,
    minimum: int,
    maximum: int,
    events: Sequence[Change],
    up: Direction,
    down: Direction,
    now: datetime,
) -> tuple[int, str]:
    """HPA's `convertDesiredReplicasWithBehaviorRate`: bound by the policies, then min/max.

    A group outside its bounds (min raised, max lowered) goes straight to the bound, as HPA
    does before it looks at any metric."""
    if current < minimum:
        return minimum if desired <= minimum else min(desired, maximum), f"at least {minimum} (min)"
    if current > maximum:
        return maximum, f"at most {maximum} (max)"
    if desired > current:
        ceiling = max(scale_up_limit(current, events, up, now), current)
        allowed = min(maximum, ceiling)
        if desired > allowed:
            why = (
                f"at most {maximum} (max)"
                if allowed == maximum
                else f"scale-up limited to {allowed} by its policies in this period"
            )
            return allowed, why
        return desired, ""
    if desired < current:
        floor = min(scale_down_limit(current, events, down, now), current)
        allowed = max(minimum, floor)
        if desired < allowed:
            why = (
                f"at least {minimum} (min)"
                if allowed == minimum
                else f"scale-down limited to {allowed} by its policies in this period"
            )
            return allowed, why
        return desired, ""
    return max(minimum, min(maximum, desired)), ""


@dataclass
class Decision:
    """One tick's answer for a group, with everything that shaped it."""

    current: int
    recommended: int | None  # what the metrics asked for (None: no data)
    desired: int  # what to have after stabilisation, limits and bounds
    steps: list[str] = field(default_factory=list)
    held_by: str = ""
    inputs: list[dict[str, object]] = field(default_factory=list)  # what each metric read

    @property
    def change(self) -> int:
        return self.desired - self.current


def decide(
    metrics: Sequence[MetricInput],
    current: int,
    minimum: int,
    maximum: int,
    history: Sequence[Past],
    events: Sequence[Change],
    now: datetime,
    up: Direction = DEFAULT_UP,
    down: Direction = DEFAULT_DOWN,
    tolerance: float = TOLERANCE,
    step_policies: Sequence[Recommendation] = (),
) -> Decision:
    """The whole HPA pipeline for one group. `history` holds earlier raw recommendations;
    `step_policies` are step policies' recommendations, weighed like any metric's."""
    recommendations = [replicas_for(metric, current, tolerance) for metric in metrics]
    recommendations += list(step_policies)
    steps = [r.formula for r in recommendations]
    recommended, why = combine(recommendations, current)
    steps.append(why)
    if recommended is None:
        bounded = max(minimum, min(maximum, current))
        return Decision(current, None, bounded, steps, "no data" if bounded == current else "")
    stabilized, held = stabilize(recommended, current, history, up, down, now)
    if held:
        steps.append(held)
    desired, limited = limit_rate(stabilized, current, minimum, maximum, events, up, down, now)
    if limited:
        steps.append(limited)
    return Decision(current, recommended, desired, steps, held or limited)
