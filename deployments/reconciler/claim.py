"""Claiming due rollouts: leases taken with SKIP LOCKED, and queueing a run for each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deployments.choices import ACTIVE_STATES
from deployments.models import Rollout

logger = logging.getLogger(__name__)

CLAIM_BATCH = 200
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
        for rollout_id, at in due:
            Rollout.objects.filter(id=rollout_id).update(lease_until=max(at, now) + held_for)
    return due


def kick(rollout_id: int) -> None:
    """Queue a run now (after the caller's transaction commits); the beat is the fallback."""

    def send() -> None:
        from deployments.tasks import advance as advance_task

        try:
            advance_task.apply_async(args=(rollout_id,))
        except Exception:
            logger.warning("could not queue rollout %s; the beat will pick it up", rollout_id)

    transaction.on_commit(send)


def celery_schedule(rollout_id: int, at: datetime) -> None:
    """Queue a run for `at` (no ETA when it is due already: it goes straight to a worker)."""
    from deployments.tasks import advance as advance_task

    try:
        if at <= timezone.now():
            advance_task.apply_async(args=(rollout_id,))
        else:
            advance_task.apply_async(args=(rollout_id,), eta=at)
    except Exception:
        logger.warning("could not queue rollout %s for %s; the beat will", rollout_id, at)
