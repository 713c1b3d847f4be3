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

from django.db import DatabaseError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Max, Q, Value
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
        ScalingGroup.objects.filter(pk__any=ids).update(lease_until=now + LEASE)
    return ids


@dataclass
class Tick:
    """What one tick did, for logs, tests and the benchmark."""

    group_id: int
    decided: Outcome | None
    changed: bool


def tick(group_id: int, now: datetime | None = None) -> Tick:
    """Decide one group's count now and release its lease; tolerates a deleted group."""
    return tick_many([group_id], now)[0]


def decide_due(now: datetime | None = None, limit: int = CLAIM_BATCH) -> list[Tick]:
    """The beat's body: lock up to `limit` due groups and decide them, in ONE transaction.

    The row locks are the claim (SKIP LOCKED: a second worker takes the next groups, never
    these), so no lease is written and released around the decisions: one SELECT and one
    UPDATE a batch instead of three statements and two commits. A worker that dies
    mid-batch rolls back, and its groups are due again at once."""
    now = now or timezone.now()
    with transaction.atomic():
        # No joins: a group's service and environment are read only when its count
        # changes (the event names them), a few groups a tick, not 1,000.
        groups = list(
            ScalingGroup.objects.select_for_update(skip_locked=True)
            .filter(next_due_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("next_due_at")[:limit]
        )
        ticks = _decide_locked(groups, now)
    return [ticks[g.pk] for g in groups]


def tick_many(group_ids: list[int], now: datetime | None = None) -> list[Tick]:
    """Decide each claimed group's count and release its lease, in one transaction.

    The inputs of every group are read in a fixed number of queries (pools, histories,
    recent changes), so a beat's claim of 500 groups costs about a dozen round trips,
    not 17 a group (bench/scaling's decision loop). A group whose decision raises is
    logged and released to its next sync, never holding the others back."""
    now = now or timezone.now()
    with transaction.atomic():
        groups = list(ScalingGroup.objects.select_for_update().filter(pk__any=group_ids))
        results = _decide_locked(groups, now)
    return [results.get(i) or Tick(i, None, False) for i in group_ids]


def _decide_locked(groups: list[ScalingGroup], now: datetime) -> dict[int, Tick]:
    """Decide `groups` (locked by the caller's transaction), then store and release them."""
    if not groups:
        return {}
    by_id = {g.pk: g for g in groups}
    enabled = [g for g in groups if g.enabled]
    specs = inputs.metric_specs([g.pk for g in enabled])
    found = inputs.pools(enabled, now, specs)
    histories = _histories(enabled, now)
    changes = _recent_changes(enabled, now)
    new_recommendations: list[Recommendation] = []
    results: dict[int, Tick] = {}
    for group in groups:
        outcome = None
        if group.enabled:
            try:
                outcome = _decide(
                    group,
                    specs[group.pk],
                    found[group.pk],
                    histories.get(group.pk, []),
                    changes.get(group.pk, []),
                    now,
                    new_recommendations,
                )
            except DatabaseError:
                raise  # the transaction is gone: locks and leases go, and the groups retry
            except Exception:
                logger.exception("scaling: deciding %s failed; retried at its next sync", group)
        changed = outcome is not None and outcome.desired != group.desired
        if changed and outcome is not None:
            _record(group, outcome, now)
            group.desired = outcome.desired
            # Acted on at the next beat, not at the idle group's next look (IDLE_EVERY).
            group.converge_due_at = now
        group.next_due_at = now + timedelta(seconds=group.sync_seconds)
        group.lease_until = None
        group.last_decision_at = now
        results[group.pk] = Tick(group.pk, outcome, changed)
    Recommendation.objects.bulk_create(new_recommendations)
    # One UPDATE for the batch (each group due again after its own sync period);
    # Django's bulk_update builds a CASE per row and per field, 60 % of a batch's time.
    ScalingGroup.objects.filter(pk__any=[g.pk for g in groups]).update(
        next_due_at=ExpressionWrapper(
            Value(now) + F("sync_seconds") * Value(timedelta(seconds=1)),
            output_field=DateTimeField(),
        ),
        lease_until=None,
        last_decision_at=now,
    )
    for tick_of in results.values():
        if tick_of.changed:  # rare: one more UPDATE for a group whose count changed
            ScalingGroup.objects.filter(pk=tick_of.group_id).update(
                desired=by_id[tick_of.group_id].desired, converge_due_at=now
            )
    return results


def _decide(
    group: ScalingGroup,
    metrics: list[inputs.MetricSpec],
    found: inputs.Pool,
    history: list[Past],
    changes: list[Change],
    now: datetime,
    new_recommendations: list[Recommendation],
) -> Outcome:
    current = len(found.instances)
    if not history:
        # A group with no history starts its window at the current count, kept like any
        # recommendation, as HPA does (maybeInitScaleDownStabilizationWindow): a fresh
        # start, or a resumed group, never scales in at once.
        new_recommendations.append(Recommendation(group=group, at=now, replicas=current))
        history = [Past(now, current)]
    targets, step_metrics = [], []
    for metric in metrics:
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
        history,
        changes,
        now,
        up=group.up,
        down=group.down,
        tolerance=group.tolerance,
        step_policies=step_metrics,
    )
    outcome.steps.insert(0, f"pool: {current} instance(s), {len(found.ready)} ready")
    if found.note:
        outcome.steps.insert(1, found.note)
    others = found.members - current  # the canary's instances, not counted in the maths
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
        new_recommendations.append(
            Recommendation(group=group, at=now, replicas=outcome.recommended)
        )
    outcome.inputs = [inputs.describe(m) for m in targets]
    return outcome


def _steps(raw: Any) -> list[Step]:
    return [
        Step(s.get("lower"), s.get("upper"), int(s["change"]), s.get("kind", "instances"))
        for s in raw
    ]


def _window(group: ScalingGroup) -> int:
    return max(group.up_stabilization_seconds, group.down_stabilization_seconds)


def _histories(groups: list[ScalingGroup], now: datetime) -> dict[int, list[Past]]:
    """Each group's raw recommendations within its stabilisation window; older ones go."""
    if not groups:
        return {}
    by_window: dict[int, list[int]] = {}
    for group in groups:
        by_window.setdefault(_window(group), []).append(group.pk)
    for window, ids in by_window.items():  # one delete per distinct window (usually one)
        Recommendation.objects.filter(
            group_id__any=ids, at__lt=now - timedelta(seconds=window) - HISTORY_SLACK
        ).delete()
    since = {g.pk: now - timedelta(seconds=_window(g)) for g in groups}
    histories: dict[int, list[Past]] = {}
    # The windows read only the lowest and highest count within a cutoff, so the latest
    # time of each distinct count decides the same: a steady group at a 15 s sync holds 20
    # recommendations in a 300 s window, all of one count, and reads them as one row.
    for group_id, replicas, at in (
        Recommendation.objects.filter(group_id__any=list(since), at__gt=min(since.values()))
        .values_list("group_id", "replicas")
        .annotate(latest=Max("at"))
        .order_by()
    ):
        if at > since[group_id]:
            histories.setdefault(group_id, []).append(Past(at, replicas))
    return histories


def _period(group: ScalingGroup) -> int:
    periods = [int(p["period_seconds"]) for p in [*group.up_policies, *group.down_policies]]
    return max(periods, default=0)


def _recent_changes(groups: list[ScalingGroup], now: datetime) -> dict[int, list[Change]]:
    """The count changes made within each group's longest policy period (they limit the next)."""
    if not groups:
        return {}
    since = {g.pk: now - timedelta(seconds=_period(g)) for g in groups}
    changes: dict[int, list[Change]] = {}
    for group_id, at, desired, current in Decision.objects.filter(
        group_id__any=list(since), at__gt=min(since.values())
    ).values_list("group_id", "at", "desired", "current"):
        if at > since[group_id]:
            changes.setdefault(group_id, []).append(Change(at, desired - current))
    return changes


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
