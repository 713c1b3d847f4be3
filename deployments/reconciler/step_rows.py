"""A rollout's step rows: opening the row for the step being run, closing it, moving on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from deployments.choices import AnalysisState, RolloutEvent, StepKind, StepOutcome
from deployments.models import Rollout, RolloutStep
from deployments.reconciler.events import announce, rollout_name
from deployments.strategies import describe_step


def step_row(
    rollout: Rollout,
    kind: str,
    spec: Any,
    now: datetime,
    due_at: datetime,
    index: int | None = None,
) -> RolloutStep:
    """The running row of this step, created (and announced) on the step's first run."""
    index = rollout.step_index if index is None else index
    row = rollout.step_runs.filter(index=index, kind=kind, outcome=StepOutcome.RUNNING).last()
    if row is not None:
        return row
    row = RolloutStep.objects.create(
        rollout=rollout,
        index=index,
        kind=kind,
        spec=spec if isinstance(spec, dict) else {"value": spec},
        due_at=due_at,
        started_at=now,
        desired_weight=int(spec) if kind == StepKind.SET_WEIGHT else None,
    )
    # An analysis announces itself with its metrics, a rollback with its ending event.
    if kind not in (StepKind.ANALYSIS, StepKind.ROLLBACK):
        step = rollout.current_step
        announce(
            RolloutEvent.STEP_STARTED,
            rollout,
            message=f"{rollout_name(rollout)}: step {index + 1}: {describe_step(step) or kind}",
            step=index,
            kind=kind,
        )
    return row


def complete_step(rollout: Rollout, now: datetime, outcome: StepOutcome = StepOutcome.DONE) -> None:
    """Close the current step's row (if any) and move on; the next run starts the next step."""
    row = rollout.step_runs.filter(index=rollout.step_index, outcome=StepOutcome.RUNNING).last()
    if row is not None:
        row.outcome, row.finished_at = outcome, now
        row.save(update_fields=["outcome", "finished_at"])
    rollout.analysis_runs.filter(step_index=rollout.step_index, state=AnalysisState.RUNNING).update(
        state=AnalysisState.CANCELLED, finished_at=now
    )
    next_step(rollout, now)


def finish_step(rollout: Rollout, row: RolloutStep, now: datetime) -> None:
    """The reconciler did this step: mark its row done, with the weights it left, and move on."""
    row.outcome, row.finished_at = StepOutcome.DONE, now
    if row.kind in (StepKind.SET_WEIGHT, StepKind.PREVIEW):
        row.desired_weight, row.applied_weight = rollout.desired_weight, rollout.applied_weight
    row.save()
    next_step(rollout, now)


def next_step(rollout: Rollout, now: datetime) -> None:
    """Point at the next step, due now, with a fresh progress deadline."""
    rollout.step_index = min(rollout.step_index + 1, len(rollout.steps))
    rollout.pause_until = None
    rollout.next_action_at = now
    rollout.deadline_at = now + timedelta(seconds=rollout.progress_deadline_seconds)
    rollout.revision += 1
