"""One run of one rollout: lock the row, do the step that is due, write the next due time."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from deployments.choices import PauseCause, RolloutState
from deployments.drivers.base import DriverError
from deployments.models import Rollout
from deployments.reconciler.claim import Scheduler, lease
from deployments.reconciler.measure import MeasureJob, measure, record
from deployments.reconciler.steps import progress
from deployments.reconciler.traffic import driver_failed
from deployments.reconciler.transitions import begin_rollback, rollback_step

logger = logging.getLogger(__name__)

# A batch does at most this many runs (its rollouts' steps that fall due at once included)
# before it hands the rest on as new messages, so one message never holds a pool process
# for long: 4 x RUN_BATCH, about 2 s of work at the 9 ms a step measured with 1,000
# rollouts (chosen, not compared with other limits).
MAX_BATCH_RUNS = 200

# In a batch, one run does up to 1 + this many steps that fall due one after another, in one
# transaction and row lock (a set_weight and the pause after it: two). Measured with
# bench/rollouts/step_cost.py (100 rollouts, same run): 10.3 ms CPU a step one step a run,
# 5.4 ms chained (no lock, final UPDATE and COMMIT per step). Kept small so a person's
# abort waits for little.
CHAINED_STEPS = 3

# A run this close to its due time counts as due: ETA timers and hosts' clocks differ a little.
CLOCK_SLACK = timedelta(milliseconds=50)


@dataclass
class Outcome:
    """What one run did, for logs, tests and the bench."""

    did: str
    next_action_at: datetime | None = None
    measured: list[str] = field(default_factory=list)
    # Every step this run did, in order (more than one when steps were chained); `did` is
    # the last of them.
    steps: list[str] = field(default_factory=list)


def advance(rollout_id: int, schedule: Scheduler | None = None, chain: int = 0) -> Outcome:
    """Do the one step that is due for this rollout, if any.

    `schedule(id, at)` queues the next run when it is due soon (the fast path); without it
    the lease is released and the beat's claim finds the row when it is due. With `chain`,
    up to that many more steps that fall due at once (a set_weight's pause, say) are done
    in the same transaction: each still opens, announces and closes its own step row.
    """
    job: MeasureJob | None = None
    with transaction.atomic():
        rollout = _locked(rollout_id)
        if rollout is None:
            return Outcome("gone")
        now = timezone.now()
        if not rollout.is_active or rollout.next_action_at is None:
            return Outcome("not due", rollout.next_action_at)
        if rollout.next_action_at > now + CLOCK_SLACK:
            # Early (a message for a time that changed since): let the next claim take it.
            if rollout.lease_until is not None:
                Rollout.objects.filter(pk=rollout.pk).update(lease_until=None)
            return Outcome("not due", rollout.next_action_at)
        now = max(now, rollout.next_action_at)
        due_at = rollout.next_action_at
        job, did = _run(rollout, now, due_at)
        done = [did]
        while job is None and len(done) <= chain and _due_at_once(rollout, now):
            assert rollout.next_action_at is not None
            job, did = _run(rollout, now, rollout.next_action_at)
            done.append(did)
        if job is None:
            _finish_run(rollout, now, schedule)
            return Outcome(did, rollout.next_action_at, steps=done)
        # Keep the lease while measuring, so the beat does not hand the row to another worker.
        rollout.lease_until = now + lease()
        rollout.save(update_fields=["lease_until"])
    results = measure(job)
    with transaction.atomic():
        rollout = _locked(rollout_id)
        if rollout is None:
            return Outcome("gone")
        now = timezone.now()
        if rollout.revision != job.revision:
            # A person acted while we measured (paused, aborted...): the readings are moot.
            return Outcome("superseded", rollout.next_action_at)
        record(rollout, job, results, now)
        _finish_run(rollout, now, schedule)
        measured = [m["name"] for m in job.metrics]
        return Outcome("measured", rollout.next_action_at, measured, [*done, "measured"])


def _due_at_once(rollout: Rollout, now: datetime) -> bool:
    return (
        rollout.is_active and rollout.next_action_at is not None and rollout.next_action_at <= now
    )


@dataclass
class BatchOutcome:
    """What one batch did: each run's outcome by rollout, and the rollouts whose run raised."""

    runs: list[tuple[int, Outcome]] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def advance_many(
    rollout_ids: list[int], schedule: Scheduler | None = None, max_runs: int = MAX_BATCH_RUNS
) -> BatchOutcome:
    """Advance each rollout as `advance` does, one after another in this process; a step
    that falls due at once (the next one) is run in the same batch instead of a new message.

    Each run keeps its own transaction and row lock, so a person's abort waits for at most
    one step, and two workers given the same id do its step once (the second finds it not
    due). A run that raises (a bug, a lost database connection) is logged and left to its
    lease, after which the beat claims it again; the batch goes on with the others. Router
    failures do not raise: they pause that rollout and retry it with backoff, as always.
    """
    done = BatchOutcome()
    queue = deque(rollout_ids)
    chained: list[tuple[int, datetime]] = []

    def chain(rollout_id: int, at: datetime) -> None:
        chained.append((rollout_id, at))

    while queue:
        rollout_id = queue.popleft()
        if len(done.runs) + len(done.errors) >= max_runs:
            # Hand the rest on (each already leased), rather than hold this process longer.
            _hand_on([rollout_id, *queue], schedule)
            break
        try:
            outcome = advance(rollout_id, schedule=chain, chain=CHAINED_STEPS)
        except Exception as exc:
            logger.exception("rollout %s: run failed; the beat retries after its lease", rollout_id)
            done.errors[rollout_id] = f"{type(exc).__name__}: {exc}"
            chained.clear()
            continue
        done.runs.append((rollout_id, outcome))
        for next_id, at in chained:
            if at <= timezone.now():
                queue.append(next_id)
            elif schedule is not None:
                schedule(next_id, at)
        chained.clear()
    return done


def _hand_on(rollout_ids: list[int], schedule: Scheduler | None) -> None:
    if schedule is not None:
        now = timezone.now()
        for rollout_id in rollout_ids:
            schedule(rollout_id, now)
    else:  # no queue to hand them to: free the rows for the beat's next claim
        Rollout.objects.filter(pk__in=rollout_ids).update(lease_until=None)


def _locked(rollout_id: int) -> Rollout | None:
    return (
        Rollout.objects.select_for_update(of=("self",))
        .select_related("service", "service__team", "environment", "router", "router__router")
        .filter(pk=rollout_id)
        .first()
    )


def _run(rollout: Rollout, now: datetime, due_at: datetime) -> tuple[MeasureJob | None, str]:
    if (
        rollout.state != RolloutState.ROLLING_BACK
        and rollout.deadline_at is not None
        and now >= rollout.deadline_at
    ):
        minutes = rollout.progress_deadline_seconds / 60
        begin_rollback(
            rollout,
            RolloutState.FAILED,
            f"progress deadline ({minutes:g} min) passed at step {rollout.step_label}"
            + (f": {rollout.message}" if rollout.message else ""),
            now=now,
        )
    if rollout.state == RolloutState.ROLLING_BACK:
        return None, rollback_step(rollout, now, due_at)
    if rollout.state == RolloutState.PAUSED:
        if rollout.paused_for != PauseCause.DRIVER_ERROR:
            # Woken only to watch the deadline (inconclusive), or not at all (a person's pause).
            rollout.next_action_at = rollout.deadline_at
            return None, "still paused"
        rollout.state = RolloutState.PROGRESSING  # retry the step the router failed
    if rollout.state == RolloutState.PENDING:
        rollout.state = RolloutState.PROGRESSING
        rollout.started_at = now
    try:
        return progress(rollout, now, due_at)
    except DriverError as exc:
        driver_failed(rollout, now, str(exc))
        return None, "driver error"


def _finish_run(rollout: Rollout, now: datetime, schedule: Scheduler | None) -> None:
    at = rollout.next_action_at
    # Due at once (the next step): queue it now rather than wait for the next claim.
    fast = schedule is not None and rollout.is_active and at is not None and at <= now
    rollout.lease_until = at + lease() if fast and at is not None else None
    rollout.save()
    if fast and at is not None and schedule is not None:
        rollout_id = rollout.pk
        transaction.on_commit(lambda: schedule(rollout_id, at))
