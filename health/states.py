"""State rules: probe results through thresholds (Kubernetes' semantics), and service health."""

from __future__ import annotations

from dataclasses import dataclass

from health.choices import CheckStatus, ServiceStatus

UP = (CheckStatus.PASS, CheckStatus.WARN)


@dataclass(frozen=True)
class CheckState:
    """An instance check's status and its consecutive result counts."""

    status: str = CheckStatus.UNKNOWN
    successes: int = 0
    failures: int = 0


def advance(
    state: CheckState, result: str, success_threshold: int, failure_threshold: int
) -> CheckState:
    """The state after one probe result.

    Like a Kubernetes probe: the check turns failing only after `failure_threshold`
    consecutive failures and passing only after `success_threshold` consecutive
    successes. A warn result is a success that carries a warning: while the check is
    up, its status follows the latest result (pass or warn) without a threshold.
    """
    if result == CheckStatus.FAIL:
        failures = state.failures + 1
        flips = state.status != CheckStatus.FAIL and failures >= failure_threshold
        return CheckState(CheckStatus.FAIL if flips else state.status, 0, failures)
    successes = state.successes + 1
    if state.status in UP or successes >= success_threshold:
        return CheckState(result, successes, 0)
    return CheckState(state.status, successes, 0)


def service_status(passing: int, warning: int, failing: int) -> str:
    """healthy: every known instance passes; down: every known instance fails;
    degraded: anything in between (some fail or warn); unknown: no instance has a result."""
    known = passing + warning + failing
    if known == 0:
        return ServiceStatus.UNKNOWN
    if failing == known:
        return ServiceStatus.DOWN
    if failing or warning:
        return ServiceStatus.DEGRADED
    return ServiceStatus.HEALTHY
