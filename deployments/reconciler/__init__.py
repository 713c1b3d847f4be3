"""The reconciler: claim due rollouts, and advance each one step per run.

Level-triggered, as ARCHITECTURE.md says: the row holds the truth (state, step, due time,
lease); a message only says "look at rollout N". A run locks the row, checks it is due,
does one step (driver calls are absolute, so doing one twice is harmless), writes the
next due time, and lets go. A killed worker's row is picked up again when its lease ends.

This package's surface is what the rest of the code calls as `reconciler.X`; each name
lives in one module (claim, runs, steps, measure, transitions, step_rows, traffic,
events), and a test that patches one patches it there.
"""

from __future__ import annotations

from deployments.reconciler.claim import Scheduler, celery_schedule, claim_due, kick
from deployments.reconciler.runs import Outcome, advance
from deployments.reconciler.step_rows import complete_step
from deployments.reconciler.traffic import ROUTABLE
from deployments.reconciler.transitions import begin_rollback, pause, rollback_now

__all__ = [
    "ROUTABLE",
    "Outcome",
    "Scheduler",
    "advance",
    "begin_rollback",
    "celery_schedule",
    "claim_due",
    "complete_step",
    "kick",
    "pause",
    "rollback_now",
]
