"""The reconciler: claim due rollouts, and advance each one step per run.

Level-triggered, as ARCHITECTURE.md says: the row holds the truth (state, step, due time,
lease); a message only says "look at rollout N". A run locks the row, checks it is due,
does one step (driver calls are absolute, so doing one twice is harmless), writes the
next due time, and lets go. A killed worker's row is picked up again when its lease ends.

A second, router-level pass (drift, with rollout_wants as its first source of wanted
state) puts back what a router lost since a step set it: see drift.py.

This package's surface is what the rest of the code calls as `reconciler.X`; each name
lives in one module (claim, runs, steps, measure, transitions, step_rows, traffic,
events, drift, rollout_wants), and a test that patches one patches it there.
"""

from __future__ import annotations

from deployments.reconciler.claim import (
    Scheduler,
    batches,
    celery_schedule,
    celery_schedule_batch,
    claim_due,
    kick,
)
from deployments.reconciler.drift import Wanted, reconcile_routers, wanted_state
from deployments.reconciler.rollout_wants import rollout_wants  # registers its source
from deployments.reconciler.runs import BatchOutcome, Outcome, advance, advance_many
from deployments.reconciler.step_rows import complete_step
from deployments.reconciler.traffic import ROUTABLE
from deployments.reconciler.transitions import begin_rollback, pause, rollback_now

__all__ = [
    "ROUTABLE",
    "BatchOutcome",
    "Outcome",
    "Scheduler",
    "Wanted",
    "advance",
    "advance_many",
    "batches",
    "begin_rollback",
    "celery_schedule",
    "celery_schedule_batch",
    "claim_due",
    "complete_step",
    "kick",
    "pause",
    "reconcile_routers",
    "rollback_now",
    "rollout_wants",
    "wanted_state",
]
