"""Celery entry points for rollouts: the beat's claim, a batch of runs, one step of one
rollout, and the routers' drift pass."""

from __future__ import annotations

from celery import shared_task

from deployments import reconciler


@shared_task(name="deployments.tasks.claim_due_rollouts", ignore_result=True)
def claim_due_rollouts() -> int:
    """Every second: lease the rollouts due within the next second, queue them in batches
    (one `advance_batch` per RUN_BATCH rollouts due within BATCH_WINDOW of each other)."""
    due = reconciler.claim_due()
    for rollout_ids, at in reconciler.batches(due):
        reconciler.celery_schedule_batch(rollout_ids, at)
    return len(due)


@shared_task(name="deployments.tasks.advance_batch", ignore_result=True, acks_late=True)
def advance_batch(rollout_ids: list[int]) -> int:
    """Do the step that is due for each of these rollouts (and the ones that fall due at once
    after it); returns how many runs it did."""
    return len(reconciler.advance_many(rollout_ids, schedule=reconciler.celery_schedule).runs)


@shared_task(name="deployments.tasks.advance", ignore_result=True, acks_late=True)
def advance(rollout_id: int) -> str:
    """Do the step that is due for one rollout; a missing or not-due rollout is a no-op."""
    return reconciler.advance(rollout_id, schedule=reconciler.celery_schedule).did


@shared_task(name="deployments.tasks.reconcile_routers", ignore_result=True)
def reconcile_routers() -> int:
    """Every 2 s: read each router an active rollout depends on, re-apply what drifted."""
    return len(reconciler.reconcile_routers().repaired)
