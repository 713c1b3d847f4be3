"""Threshold logic as properties: a check flips only after N consecutive results."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from health.choices import CheckStatus, ServiceStatus
from health.states import CheckState, advance, service_status

results = st.lists(
    st.sampled_from([CheckStatus.PASS, CheckStatus.WARN, CheckStatus.FAIL]), max_size=60
)
thresholds = st.integers(min_value=1, max_value=6)


def run(sequence: list[str], success: int, failure: int) -> list[CheckState]:
    state = CheckState()
    states = []
    for result in sequence:
        state = advance(state, result, success, failure)
        states.append(state)
    return states


def trailing_run(sequence: list[str], failing: bool) -> int:
    count = 0
    for result in reversed(sequence):
        if (result == CheckStatus.FAIL) != failing:
            break
        count += 1
    return count


@given(results, thresholds, thresholds)
def test_it_turns_failing_only_after_n_consecutive_failures(
    sequence: list[str], success: int, failure: int
) -> None:
    states = run(sequence, success, failure)
    previous: str = CheckStatus.UNKNOWN
    for index, state in enumerate(states):
        if state.status == CheckStatus.FAIL and previous != CheckStatus.FAIL:
            # then the last `failure` results up to here were all failures
            assert trailing_run(sequence[: index + 1], failing=True) == failure
        previous = state.status


@given(results, thresholds, thresholds)
def test_it_turns_up_only_after_n_consecutive_successes(
    sequence: list[str], success: int, failure: int
) -> None:
    states = run(sequence, success, failure)
    previous: str = CheckStatus.UNKNOWN
    for index, state in enumerate(states):
        came_up = state.status in (CheckStatus.PASS, CheckStatus.WARN) and previous in (
            CheckStatus.FAIL,
            CheckStatus.UNKNOWN,
        )
        if came_up:
            assert trailing_run(sequence[: index + 1], failing=False) == success
        previous = state.status


@given(results, thresholds, thresholds)
def test_enough_consecutive_results_always_decide_the_state(
    sequence: list[str], success: int, failure: int
) -> None:
    states = run(sequence, success, failure)
    if not states:
        return
    if trailing_run(sequence, failing=True) >= failure:
        assert states[-1].status == CheckStatus.FAIL
    if trailing_run(sequence, failing=False) >= success:
        # while up, the status is the flavour of the latest success: pass or warn
        assert states[-1].status == sequence[-1]


@given(results, thresholds, thresholds)
def test_a_state_never_changes_without_a_result_of_the_new_kind(
    sequence: list[str], success: int, failure: int
) -> None:
    states = run(sequence, success, failure)
    previous: str = CheckStatus.UNKNOWN
    for result, state in zip(sequence, states, strict=True):
        if state.status != previous:
            assert state.status == result
        previous = state.status


def test_kubernetes_defaults_fail_on_the_third_failure_and_recover_on_one_success() -> None:
    states = run(
        [CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.FAIL, CheckStatus.FAIL, CheckStatus.PASS],
        1,
        3,
    )
    assert [s.status for s in states] == ["pass", "pass", "pass", "fail", "pass"]


def test_service_health_rule() -> None:
    assert service_status(0, 0, 0) == ServiceStatus.UNKNOWN
    assert service_status(3, 0, 0) == ServiceStatus.HEALTHY
    assert service_status(2, 0, 1) == ServiceStatus.DEGRADED
    assert service_status(2, 1, 0) == ServiceStatus.DEGRADED
    assert service_status(0, 1, 2) == ServiceStatus.DEGRADED
    assert service_status(0, 0, 3) == ServiceStatus.DOWN
