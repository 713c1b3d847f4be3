"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

import pytest

from fleet.breaker import BreakerConfig, CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    config = BreakerConfig(minimum_calls=4, wait_in_open=5, half_open_calls=2,
                           window_seconds=10)
    return CircuitBreaker("payments", config, clock=clock)


def state_of(b: CircuitBreaker) -> CircuitState:
    # Read through a call: mypy narrows `b.state` after one assert and would call the next
    # (after the breaker moved) unreachable.
    return b.state


def call(b: CircuitBreaker, ok: bool, seconds: float = 0.01) -> bool:
    if not b.acquire():
        return False
    b.record(seconds, ok)
    return True


def test_it_stays_closed_below_the_minimum_number_of_calls() -> None:
    b = breaker(Clock())
    for _ in range(3):
        call(b, ok=False)
    assert b.state is CircuitState.CLOSED
    assert b.snapshot().failure_rate == -1.0


def test_it_opens_at_the_failure_rate_threshold_and_refuses_calls() -> None:
    b = breaker(Clock())
    for ok in (True, True, False, False):
        call(b, ok)
    assert b.state is CircuitState.OPEN
    assert call(b, ok=True) is False
    assert b.snapshot().failure_rate == 50.0
    assert b.total_not_permitted == 1


def test_it_forgets_failures_older_than_the_window() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        call(b, ok=False)
    clock.now += 11
    for _ in range(3):
        call(b, ok=True)
    call(b, ok=False)
    assert b.state is CircuitState.CLOSED


def test_it_lets_trial_calls_through_after_the_wait_and_closes_when_they_pass() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        call(b, ok=False)
    clock.now += 5
    assert b.state is CircuitState.HALF_OPEN
    assert call(b, ok=True) and call(b, ok=True)
    assert state_of(b) is CircuitState.CLOSED


def test_it_opens_again_when_the_trial_calls_fail() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        call(b, ok=False)
    clock.now += 5
    call(b, ok=False)
    call(b, ok=True)
    assert b.state is CircuitState.OPEN


def test_it_opens_on_slow_calls() -> None:
    b = breaker(Clock())
    for _ in range(4):
        call(b, ok=True, seconds=2.0)
    assert b.state is CircuitState.OPEN
    assert b.snapshot().slow_call_rate == 100.0


def test_an_operator_can_force_it_open_or_disable_it() -> None:
    b = breaker(Clock())
    b.force(CircuitState.FORCED_OPEN)
    assert call(b, ok=True) is False
    b.force(CircuitState.DISABLED)
    for _ in range(10):
        assert call(b, ok=False)
    assert b.state is CircuitState.DISABLED
    with pytest.raises(ValueError, match="by hand"):
        b.force(CircuitState.HALF_OPEN)


def test_a_cancelled_trial_call_gives_its_permit_back() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        call(b, ok=False)
    clock.now += 5
    assert b.acquire() and b.acquire()
    assert b.acquire() is False  # both trial permits are out
    b.release()
    assert call(b, ok=True) is True
