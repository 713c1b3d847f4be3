"""Celery entry points for scaling: the beat's claims, one converge pass, pruning."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from scaling import autoscaler, lifecycle
from scaling.choices import TERMINATION_OPEN, LaunchState, TerminationState
from scaling.models import Decision, Launch, MetricMinute, Termination

# How long history is kept: per-minute metrics feed the charts and the leak verdict.
KEEP_MINUTES = timedelta(days=7)
KEEP_DECISIONS = timedelta(days=30)


@shared_task(name="scaling.tasks.decide_due", ignore_result=True)
def decide_due() -> int:
    """Every second: decide the count of the groups whose sync period came round (up to a
    batch of `autoscaler.CLAIM_BATCH`, locked and decided in one transaction)."""
    return len(autoscaler.decide_due())


@shared_task(name="scaling.tasks.converge_due", ignore_result=True)
def converge_due() -> int:
    """Every second: lease the groups with work to look at, one converge task each."""
    ids = lifecycle.claim_due()
    for group_id in ids:
        converge.delay(group_id)
    return len(ids)


@shared_task(name="scaling.tasks.converge", ignore_result=True, acks_late=True)
def converge(group_id: int) -> int:
    """One pass over one group: launches, terminations, the count (lifecycle.converge)."""
    done = lifecycle.converge(group_id)
    return len(done.launched) + len(done.chosen) + len(done.terminated)


@shared_task(name="scaling.tasks.prune", ignore_result=True)
def prune() -> int:
    now = timezone.now()
    removed = MetricMinute.objects.filter(minute__lt=now - KEEP_MINUTES).delete()[0]
    removed += Decision.objects.filter(at__lt=now - KEEP_DECISIONS).delete()[0]
    removed += Launch.objects.filter(
        started_at__lt=now - KEEP_DECISIONS,
        state__in=[LaunchState.IN_SERVICE, LaunchState.FAILED],
    ).delete()[0]
    removed += (
        Termination.objects.filter(started_at__lt=now - KEEP_DECISIONS)
        .exclude(state__in=TERMINATION_OPEN)
        .filter(state=TerminationState.TERMINATED)
        .delete()[0]
    )
    return removed
