"""The step kinds a strategy is made of, each done in one run: set weight, pause, analysis,
preview and drain stable; after the last step comes finalize."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from deployments.choices import PauseCause, StepKind
from deployments.models import Rollout, RolloutStep
from deployments.reconciler.measure import MeasureJob, analysis_step
from deployments.reconciler.step_rows import finish_step, step_row
from deployments.reconciler.traffic import apply_weight, driver_of, driver_recovered, targets
from deployments.reconciler.transitions import finalize, pause
from deployments.strategies import step_kind

StepRun = Callable[[Rollout, RolloutStep, Any, datetime], tuple[MeasureJob | None, str]]


def progress(rollout: Rollout, now: datetime, due_at: datetime) -> tuple[MeasureJob | None, str]:
    """Run the current step (or finalize after the last), saying what it did."""
    step = rollout.current_step
    if step is None:
        return None, finalize(rollout, now, due_at)
    kind = step_kind(step)
    spec = step[kind]
    row = step_row(rollout, kind, spec, now, due_at)
    run = STEP_RUNS.get(kind)
    if run is None:
        raise ValueError(f"rollout {rollout.pk} has an unknown step {kind!r}")
    return run(rollout, row, spec, now)


def _set_weight(
    rollout: Rollout, row: RolloutStep, spec: Any, now: datetime
) -> tuple[MeasureJob | None, str]:
    apply_weight(rollout, int(spec), now)
    driver_recovered(rollout, now)
    finish_step(rollout, row, now)
    return None, f"set weight {spec}"


def _pause(
    rollout: Rollout, row: RolloutStep, spec: dict[str, Any], now: datetime
) -> tuple[MeasureJob | None, str]:
    seconds = spec.get("seconds")
    if seconds is None:
        pause(rollout, PauseCause.PROMOTION, f"waiting to be promoted ({rollout.step_label})", now)
        return None, "waiting for promotion"
    if rollout.pause_until is None:
        rollout.pause_until = now + timedelta(seconds=int(seconds))
        rollout.next_action_at = rollout.pause_until
        rollout.deadline_at = rollout.pause_until + timedelta(
            seconds=rollout.progress_deadline_seconds
        )
        return None, f"pausing {seconds}s"
    if now < rollout.pause_until:
        rollout.next_action_at = rollout.pause_until
        rollout.deadline_at = rollout.pause_until + timedelta(
            seconds=rollout.progress_deadline_seconds
        )
        return None, "still pausing"
    finish_step(rollout, row, now)
    return None, "pause over"


def _analysis(
    rollout: Rollout, row: RolloutStep, spec: dict[str, Any], now: datetime
) -> tuple[MeasureJob | None, str]:
    job = analysis_step(rollout, row, spec, now)
    return job, "analysis started" if job is None else "measuring"


def _preview(
    rollout: Rollout, row: RolloutStep, spec: Any, now: datetime
) -> tuple[MeasureJob | None, str]:
    _, canary = targets(rollout)
    apply_weight(rollout, 0, now)
    driver_of(rollout).ready(canary, rollout.router_state)
    driver_recovered(rollout, now)
    finish_step(rollout, row, now)
    return None, "preview"


def _drain_stable(
    rollout: Rollout, row: RolloutStep, spec: Any, now: datetime
) -> tuple[MeasureJob | None, str]:
    stable, _ = targets(rollout)
    driver_of(rollout).drain(stable, rollout.router_state)
    driver_recovered(rollout, now)
    finish_step(rollout, row, now)
    return None, "drained stable"


# Finalize and rollback are not listed: the reconciler adds them itself, never a strategy.
STEP_RUNS: dict[str, StepRun] = {
    StepKind.SET_WEIGHT: _set_weight,
    StepKind.PAUSE: _pause,
    StepKind.ANALYSIS: _analysis,
    StepKind.PREVIEW: _preview,
    StepKind.DRAIN_STABLE: _drain_stable,
}
