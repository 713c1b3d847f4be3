"""The autoscaler: claim due groups, decide each one's count from its metrics, record why.

Level-triggered like the rollout reconciler: a group's row holds its due time and lease; a
beat claims due rows with SKIP LOCKED and a lease, so two workers never decide for one
group. A tick reads the pool (inputs), runs the HPA pipeline (policy), holds scale-in while
a rollout of the service is active, stores the raw recommendation (for the stabilisation
windows) and, when the count changes, a `Decision` with every input and a `scaling.decided`
event. Acting on the count (launching, draining) is `lifecycle.converge`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.events import publish
from scaling import inputs
from scaling.choices import Reason, ScalingEvent
from scaling.models import Decision, Recommendation, ScalingGroup
from scaling.policy import Change, Past, Step, decide, step_replicas
from scaling.policy import Decision as Outcome

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
CLAIM_BATCH = 500
# Raw recommendations are kept this much longer than the longest window that reads them.
HISTORY_SLACK = timedelta(minutes=5)


def claim_due(now: datetime | None = None, limit: int = CLAIM_BATCH) -> list[int]:
    """Lease the groups due now; each is claimed by one caller only (SKIP LOCKED)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            ScalingGroup.objects.select_for_update(skip_locked=True)
            .filter(next_due_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("next_due_at")
            .values_list("pk", flat=True)[:limit]
        )
        ScalingGroup.objects.filter(pk__in=ids).update(lease_until=now + LEASE)
    return ids


@dataclass
class Tick:
    """What one tick did, for logs, tests and the benchmark."""

    group_id: int
    decided: Outcome | None
    changed: bool


def tick(group_id: int, now: datetime | None = None) -> Tick:
    """Decide one group's count now and release its lease; tolerates a deleted group."""
    now = now or timezone.now()
    with transaction.atomic():
        group = (
            ScalingGroup.objects.select_for_update(of=("self",))
            .select_related("service", "environment")
            .filter(pk=group_id)
            .first()
        )
        if group is None:
            return Tick(group_id, None, False)
        outcome = _decide(group, now) if group.enabled else None
        changed = outcome is not None and outcome.desired != group.desired
        if changed and outcome is not None:
            _record(group, outcome, now)
        fields = ["next_due_at", "lease_until", "last_decision_at"]
        if changed and outcome is not None:
            group.desired = outcome.desired
            # Acted on at the next beat, not at the idle group's next look (IDLE_EVERY).
            group.converge_due_at = now
            fields += ["desired", "converge_due_at"]
        group.next_due_at = now + timedelta(seconds=group.sync_seconds)
        group.lease_until = None
        group.last_decision_at = now
        group.save(update_fields=fields)
    return Tick(group_id, outcome, changed)


def _decide(group: ScalingGroup, now: datetime) -> Outcome:
    found = inputs.pool(group, now)
    members = inputs.members(group).count()
    current = len(found.instances)
    targets, step_metrics = [], []
    for metric in group.metrics.all():
        measured = inputs.metric_input(metric, found, group, now)
        if metric.steps:
            step_metrics.append(step_replicas(measured, _steps(metric.steps), current))
        else:
            targets.append(measured)
    outcome = decide(
        targets,
        current,
        group.min_instances,
        group.max_instances,
        _history(group, current, now),
        _changes(group, now),
        now,
        up=group.up,
        down=group.down,
        tolerance=group.tolerance,
        step_policies=step_metrics,
    )
    outcome.steps.insert(0, f"pool: {current} instance(s), {len(found.ready)} ready")
    if found.note:
        outcome.steps.insert(1, found.note)
    others = members - current  # the canary's instances, not counted in the maths
    if others:
        outcome.desired += others
        outcome.current += others
        outcome.steps.append(f"plus {others} instance(s) of the new version: {outcome.desired}")
    frozen = found.rollout is not None and group.freeze_scale_in_during_rollout
    if frozen and found.rollout is not None and outcome.desired < outcome.current:
        outcome.held_by = f"scale-in frozen: rollout #{found.rollout.pk} is active"
        outcome.steps.append(outcome.held_by)
        outcome.desired = outcome.current
    outcome.desired = max(group.min_instances, min(group.max_instances, outcome.desired))
    if outcome.recommended is not None:
        Recommendation.objects.create(group=group, at=now, replicas=outcome.recommended)
    outcome.inputs = [inputs.describe(m) for m in targets]
    return outcome


def _steps(raw: Any) -> list[Step]:
    return [
        Step(s.get("lower"), s.get("upper"), int(s["change"]), s.get("kind", "instances"))
        for s in raw
    ]


def _history(group: ScalingGroup, current: int, now: datetime) -> list[Past]:
    window = max(group.up_stabilization_seconds, group.down_stabilization_seconds)
    since = now - timedelta(seconds=window)
    Recommendation.objects.filter(group=group, at__lt=since - HISTORY_SLACK).delete()
    history = [
        Past(at, replicas)
        for at, replicas in Recommendation.objects.filter(group=group, at__gt=since).values_list(
            "at", "replicas"
        )
    ]
    if not history:
        # A group with no history starts its window at the current count, kept like any
        # recommendation, as HPA does (maybeInitScaleDownStabilizationWindow): a fresh
        # start, or a resumed group, never scales in at once.
        Recommendation.objects.create(group=group, at=now, replicas=current)
        history = [Past(now, current)]
    return history


def _changes(group: ScalingGroup, now: datetime) -> list[Change]:
    """The count changes made within the longest policy period (they limit the next ones)."""
    periods = [int(p["period_seconds"]) for p in [*group.up_policies, *group.down_policies]]
    since = now - timedelta(seconds=max(periods, default=0))
    return [
        Change(at, desired - current)
        for at, desired, current in Decision.objects.filter(group=group, at__gt=since).values_list(
            "at", "desired", "current"
        )
    ]


def _record(group: ScalingGroup, outcome: Outcome, now: datetime) -> None:
    made_inputs = outcome.inputs
    decision = Decision.objects.create(
        group=group,
        at=now,
        current=outcome.current,
        recommended=outcome.recommended,
        desired=outcome.desired,
        reason=Reason.AUTOSCALE,
        inputs=made_inputs,
        steps=outcome.steps,
        held_by=outcome.held_by,
    )
    direction = "up" if outcome.desired > outcome.current else "down"
    publish(
        ScalingEvent.DECIDED,
        subject=group,
        service=group.service,
        environment=group.environment,
        message=f"{group}: scale {direction} {outcome.current} -> {outcome.desired} "
        f"({outcome.steps[-1] if outcome.steps else 'autoscaling'})",
        payload={
            "decision": decision.pk,
            "current": outcome.current,
            "desired": outcome.desired,
            "recommended": outcome.recommended,
            "inputs": made_inputs,
            "steps": outcome.steps,
            "held_by": outcome.held_by,
        },
    )
