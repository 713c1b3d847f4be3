"""Claiming due rollouts: leases taken with SKIP LOCKED, and queueing a run for each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from deployments.choices import ACTIVE_STATES
from deployments.models import Rollout

logger = logging.getLogger(__name__)

# One claim leases at most this many rows (the beat claims every second, so 2,000 a second
# at most; the bench's 1,000 rollouts with 10 s pauses offer ~300 runs a second).
CLAIM_BATCH = 2000
# Claimed rollouts go to workers as `advance_batch` messages of at most this many ids: one
# Celery message, one task start and one connection check per batch instead of per run.
# Measured (bench/rollouts/run.py, 1,000 rollouts, prefork x2, loaded machine): worker CPU
# per step 28 ms -> 14 ms with batches alone, 9 ms with chained steps; 50 ids is ~0.5 s of
# work, so both pool processes share a second's claim (bench/RESULTS.md, issue 16). Not
# compared with other sizes yet.
RUN_BATCH = 50
# Rollouts due within this window of each other share a batch; the batch's ETA is the
# latest due time in it, so a step starts at most this late because of batching (chosen,
# not measured against other windows: a tenth of the 1 s lag target).
BATCH_WINDOW = timedelta(milliseconds=100)
# The claim looks this far ahead and queues what it finds with an ETA of its due time, so
# a timed step starts on time rather than up to a tick late. Kept short: Celery holds ETA
# messages in the worker, and many far-off ones there slowed the queue behind them (the
# bench measured step starts seconds late with a 60 s horizon).
CLAIM_HORIZON = timedelta(seconds=1)

Scheduler = Callable[[int, datetime], None]


def lease() -> timedelta:
    """How long a claimed or running rollout stays with its worker; see settings.py."""
    return timedelta(seconds=settings.SIGNALBOX_ROLLOUT_LEASE_SECONDS)


def claim_due(
    now: datetime | None = None, limit: int = CLAIM_BATCH, horizon: timedelta = CLAIM_HORIZON
) -> list[tuple[int, datetime]]:
    """Lease the rollouts due within `horizon` that nobody holds: [(id, due time)].

    The caller queues one run per id, due at that time; the lease lasts until then plus
    the lease time, after which the row is claimable again (a killed worker's, say).
    """
    now = now or timezone.now()
    held_for = lease()
    with transaction.atomic():
        rows = (
            Rollout.objects.select_for_update(skip_locked=True)
            .filter(state__in=ACTIVE_STATES, next_action_at__lte=now + horizon)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("next_action_at")
            .values_list("id", "next_action_at")[:limit]
        )
        due = [(rollout_id, at) for rollout_id, at in rows if at is not None]
        if due:
            # One UPDATE for the whole claim: each row held until its due time plus the lease.
            Rollout.objects.filter(id__in=[rollout_id for rollout_id, _ in due]).update(
                lease_until=Greatest(F("next_action_at"), Value(now)) + held_for
            )
    return due


def batches(
    due: list[tuple[int, datetime]], size: int = RUN_BATCH, window: timedelta = BATCH_WINDOW
) -> list[tuple[list[int], datetime]]:
    """Claimed (id, due time) pairs, ordered by due time, as [(ids, ETA)]: at most `size`
    ids each, spanning at most `window`, due at the latest due time among them."""
    found: list[tuple[list[int], datetime]] = []
    ids: list[int] = []
    first = last = None
    for rollout_id, at in sorted(due, key=lambda pair: pair[1]):
        if ids and (len(ids) >= size or first is None or at - first > window):
            assert last is not None
            found.append((ids, last))
            ids = []
        if not ids:
            first = at
        ids.append(rollout_id)
        last = at
    if ids and last is not None:
        found.append((ids, last))
    return found


def kick(rollout_id: int) -> None:
    """Queue a run now (after the caller's transaction commits); the beat is the fallback."""

    def send() -> None:
        from deployments.tasks import advance as advance_task

        try:
            advance_task.apply_async(args=(rollout_id,))
        except Exception:
            logger.warning("could not queue rollout %s; the beat will pick it up", rollout_id)

    transaction.on_commit(send)


def celery_schedule_batch(rollout_ids: list[int], at: datetime) -> None:
    """Queue one run of many rollouts for `at` (no ETA when due already)."""
    from deployments.tasks import advance_batch

    _send(advance_batch, rollout_ids, at, f"{len(rollout_ids)} rollouts")


def celery_schedule(rollout_id: int, at: datetime) -> None:
    """Queue a run for `at` (no ETA when it is due already: it goes straight to a worker)."""
    from deployments.tasks import advance as advance_task

    _send(advance_task, rollout_id, at, f"rollout {rollout_id}")


def _send(task: Any, argument: Any, at: datetime, what: str) -> None:
    try:
        if at <= timezone.now():
            task.apply_async(args=(argument,))
        else:
            task.apply_async(args=(argument,), eta=at)
    except Exception:
        logger.warning("could not queue %s for %s; the beat will", what, at)
