"""Moves between states: pausing, succeeding, and rolling back (which never gives up)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deployments.choices import (
    AnalysisState,
    PauseCause,
    RolloutEvent,
    RolloutState,
    StepKind,
    StepOutcome,
)
from deployments.drivers.base import DriverError
from deployments.models import Rollout
from deployments.reconciler.events import announce, rollout_name
from deployments.reconciler.step_rows import step_row
from deployments.reconciler.traffic import apply_weight, backoff_after, driver_recovered

ENDING_EVENTS = {
    RolloutState.ROLLED_BACK: RolloutEvent.ROLLED_BACK,
    RolloutState.ABORTED: RolloutEvent.ABORTED,
    RolloutState.FAILED: RolloutEvent.FAILED,
}


def pause(
    rollout: Rollout,
    cause: PauseCause,
    message: str,
    now: datetime,
    *,
    keep_deadline: bool = False,
    actor: Any = None,
) -> None:
    """Stop advancing; only the deadline (when kept) still wakes the rollout."""
    rollout.state = RolloutState.PAUSED
    rollout.paused_for = cause
    rollout.message = message[:1000]
    if not keep_deadline:
        rollout.deadline_at = None
    rollout.next_action_at = rollout.deadline_at
    rollout.revision += 1
    announce(
        RolloutEvent.PAUSED,
        rollout,
        actor=actor,
        message=f"{rollout_name(rollout)} paused: {message}",
        cause=cause,
    )


def finalize(rollout: Rollout, now: datetime, due_at: datetime) -> str:
    """After the last step: all traffic on the new version, and the rollout succeeds."""
    row = step_row(rollout, StepKind.FINALIZE, {}, now, due_at)
    if rollout.desired_weight != 100 or rollout.applied_weight != 100:
        apply_weight(rollout, 100, now)
    driver_recovered(rollout, now)
    row.outcome, row.finished_at = StepOutcome.DONE, now
    row.applied_weight = rollout.applied_weight
    row.save()
    rollout.state = RolloutState.SUCCEEDED
    rollout.finished_at = now
    rollout.next_action_at = rollout.deadline_at = rollout.pause_until = None
    rollout.message = f"all traffic on {rollout.to_version}"
    rollout.revision += 1
    announce(
        RolloutEvent.SUCCEEDED,
        rollout,
        message=f"{rollout_name(rollout)} succeeded: {rollout.message}",
    )
    return "succeeded"


def begin_rollback(
    rollout: Rollout, ending: RolloutState, message: str, *, now: datetime, actor: Any = None
) -> None:
    """Start putting all traffic back on stable; the next run does it (and retries until done)."""
    rollout.state = RolloutState.ROLLING_BACK
    rollout.ending = ending
    rollout.message = message[:1000]
    rollout.paused_for = PauseCause.NONE
    rollout.next_action_at = now
    rollout.deadline_at = rollout.pause_until = None
    rollout.driver_failures = 0
    rollout.revision += 1
    rollout.step_runs.filter(outcome=StepOutcome.RUNNING).update(
        outcome=StepOutcome.SKIPPED, finished_at=now
    )
    rollout.analysis_runs.filter(state=AnalysisState.RUNNING).update(
        state=AnalysisState.CANCELLED, finished_at=now
    )
    announce(
        ENDING_EVENTS[ending],
        rollout,
        actor=actor,
        message=f"{rollout_name(rollout)}: rolling back: {message}",
        phase="started",
    )


def rollback_step(rollout: Rollout, now: datetime, due_at: datetime) -> str:
    """Put all traffic back on stable and end the rollout as begin_rollback asked."""
    row = step_row(rollout, StepKind.ROLLBACK, {}, now, due_at, index=rollout.step_index)
    try:
        apply_weight(rollout, 0, now)
    except DriverError as exc:
        # A rollback never gives up: weights must not be left unknown. Retry with backoff.
        rollout.driver_failures += 1
        rollout.next_action_at = now + backoff_after(rollout.driver_failures)
        row.message = f"traffic router failed: {exc}"
        row.save()
        announce(
            RolloutEvent.DRIVER_ERROR,
            rollout,
            message=f"rollback of {rollout_name(rollout)}: {exc}",
            error=str(exc),
        )
        return "rollback driver error"
    ending = RolloutState(rollout.ending or RolloutState.ROLLED_BACK)
    row.outcome, row.finished_at, row.applied_weight = StepOutcome.DONE, now, rollout.applied_weight
    row.save()
    rollout.state = ending
    rollout.finished_at = now
    rollout.driver_failures = 0
    rollout.paused_for = PauseCause.NONE
    rollout.next_action_at = rollout.deadline_at = rollout.pause_until = None
    rollout.revision += 1
    announce(
        ENDING_EVENTS[ending],
        rollout,
        actor=None,
        message=f"{rollout_name(rollout)} {ending.label.lower()}: all traffic back on "
        f"{rollout.from_version or 'stable'}. {rollout.message}",
        phase="completed",
    )
    return f"rolled back ({ending})"


def rollback_now(rollout: Rollout, now: datetime) -> None:
    """Restore stable weights at once, in the caller's transaction (an abort should not wait
    behind a busy queue); if the router fails, the reconciler retries as for any rollback."""
    rollback_step(rollout, now, now)
