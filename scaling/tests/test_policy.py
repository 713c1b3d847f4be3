"""The scaling maths held to the Kubernetes HPA's rules, as properties over generated fleets."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given
from hypothesis import strategies as st

from scaling.policy import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    SELECT_DISABLED,
    TOLERANCE,
    Change,
    Direction,
    MetricInput,
    Past,
    RatePolicy,
    Reading,
    Step,
    decide,
    limit_rate,
    replicas_for,
    stabilize,
    step_replicas,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
values = st.floats(min_value=0, max_value=1000, allow_nan=False)
targets = st.floats(min_value=0.5, max_value=500, allow_nan=False)


def fleet(values: list[float], target: float) -> MetricInput:
    return MetricInput("cpu", target, tuple(Reading(f"i{n}", v) for n, v in enumerate(values)))


@given(st.lists(values, min_size=1, max_size=40), targets)
def test_it_asks_ceil_of_current_times_usage_over_target(
    readings: list[float], target: float
) -> None:
    # given every instance ready and reporting
    metric = fleet(readings, target)
    ratio = (sum(readings) / len(readings)) / target
    # then outside the tolerance it asks ceil(n * ratio), inside it keeps the count
    wanted = replicas_for(metric, len(readings)).replicas
    if abs(1 - ratio) <= TOLERANCE:
        assert wanted == len(readings)
    else:
        assert wanted == math.ceil(ratio * len(readings))


@given(st.lists(values, min_size=1, max_size=20), targets, st.integers(1, 10))
def test_missing_readings_never_push_against_the_ready_instances(
    readings: list[float], target: float, missing: int
) -> None:
    # given some instances that did not report
    current = len(readings) + missing
    metric = MetricInput(
        "cpu",
        target,
        tuple(Reading(f"i{n}", v) for n, v in enumerate(readings))
        + tuple(Reading(f"m{n}", None) for n in range(missing)),
    )
    ready_ratio = (sum(readings) / len(readings)) / target
    wanted = replicas_for(metric, current).replicas
    assert wanted is not None
    # then the count moves only the way the instances that did report say
    if ready_ratio > 1:
        assert wanted >= current
    if ready_ratio < 1:
        assert wanted <= current


@given(st.lists(values, min_size=1, max_size=20), targets, st.integers(1, 10))
def test_instances_in_their_readiness_delay_do_not_add_scale_up(
    readings: list[float], target: float, starting: int
) -> None:
    # given new instances still starting (they report high CPU while warming up)
    current = len(readings) + starting
    metric = MetricInput(
        "cpu",
        target,
        tuple(Reading(f"i{n}", v) for n, v in enumerate(readings))
        + tuple(Reading(f"s{n}", target * 10, ready=False) for n in range(starting)),
    )
    ready_only = replicas_for(fleet(readings, target), len(readings)).replicas
    with_starting = replicas_for(metric, current).replicas
    assert ready_only is not None and with_starting is not None
    # then their warm-up load asks for no more than the ready ones alone (plus themselves)
    assert with_starting <= max(ready_only + starting, current)


@given(
    st.lists(st.tuples(st.lists(values, min_size=3, max_size=3), targets), min_size=1, max_size=5),
    st.integers(1, 50),
    st.integers(1, 100),
)
def test_the_largest_metric_wins_and_the_count_stays_within_min_and_max(
    metrics: list[tuple[list[float], float]], minimum: int, span: int
) -> None:
    maximum = minimum + span
    inputs = [
        MetricInput(f"m{n}", target, tuple(Reading(f"i{k}", v) for k, v in enumerate(vals)))
        for n, (vals, target) in enumerate(metrics)
    ]
    decision = decide(inputs, 3, minimum, maximum, [], [], NOW)
    individual = [replicas_for(m, 3).replicas or 0 for m in inputs]
    assert decision.recommended == max(individual)
    assert minimum <= decision.desired <= maximum


@given(st.integers(1, 200), st.integers(1, 2000))
def test_scale_up_adds_at_most_double_or_four_per_fifteen_seconds(current: int, asked: int) -> None:
    desired, _ = limit_rate(asked, current, 1, 10_000, [], DEFAULT_UP, DEFAULT_DOWN, NOW)
    assert desired <= max(2 * current, current + 4)
    if asked > current:
        assert desired > current  # it always moves when asked to grow


@given(st.integers(2, 200), st.integers(1, 200))
def test_a_scale_up_in_this_period_counts_against_the_next(current: int, added: int) -> None:
    assume(added < current)
    # given instances already added 5 s ago
    events = [Change(NOW - timedelta(seconds=5), added)]
    desired, _ = limit_rate(10_000, current, 1, 10_000, events, DEFAULT_UP, DEFAULT_DOWN, NOW)
    start = current - added
    assert desired <= max(2 * start, start + 4, current)


@given(st.integers(1, 100), st.integers(1, 100), st.integers(0, 299))
def test_scale_down_waits_for_the_highest_recommendation_of_300_seconds(
    current: int, higher: int, seconds_ago: int
) -> None:
    # given a recommendation of `higher` within the window, and now one of 1
    history = [Past(NOW - timedelta(seconds=seconds_ago), higher)]
    chosen, why = stabilize(1, current, history, DEFAULT_UP, DEFAULT_DOWN, NOW)
    # then it scales down no further than that recommendation (and never up)
    assert chosen == min(current, max(1, higher))
    if chosen != 1:
        assert "300 s" in why


def test_an_old_recommendation_no_longer_holds_scale_down() -> None:
    history = [Past(NOW - timedelta(seconds=301), 10)]
    assert stabilize(2, 10, history, DEFAULT_UP, DEFAULT_DOWN, NOW) == (2, "")


@given(st.integers(2, 100))
def test_a_disabled_direction_never_moves(current: int) -> None:
    frozen = Direction(0, (RatePolicy("percent", 100, 15),), SELECT_DISABLED)
    assert limit_rate(1, current, 1, 1000, [], DEFAULT_UP, frozen, NOW)[0] == current
    assert limit_rate(1000, current, 1, 1000, [], frozen, DEFAULT_DOWN, NOW)[0] == current


def test_a_group_total_asks_one_instance_per_target() -> None:
    # given 45 queued + active tasks, a target of 10 per worker, 2 workers
    backlog = MetricInput("celery backlog", 10, total=45)
    recommendation = replicas_for(backlog, 2)
    assert recommendation.replicas == 5
    assert "ceil(45 / 10 each) = 5" in recommendation.formula


def test_no_data_keeps_the_count_and_says_so() -> None:
    decision = decide([MetricInput("cpu", 50, (Reading("a", None),))], 3, 1, 5, [], [], NOW)
    assert (decision.recommended, decision.desired) == (None, 3)
    assert any("no ready instance" in step for step in decision.steps)


def test_a_step_policy_adds_what_its_interval_says() -> None:
    steps = [
        Step(None, 50, -1),
        Step(50, 80, 0),
        Step(80, None, 2),
    ]
    queue = MetricInput("queue", 1, total=95)
    assert step_replicas(queue, steps, 4).replicas == 6
    assert step_replicas(MetricInput("queue", 1, total=30), steps, 4).replicas == 3
    assert step_replicas(MetricInput("queue", 1, total=60), steps, 4).replicas == 4
    percent = step_replicas(queue, [Step(80, None, 50, "percent")], 4)
    assert percent.replicas == 6
    assert percent.formula == "queue: 95 in [80, inf): +2 -> 6"
