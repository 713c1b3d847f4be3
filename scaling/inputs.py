"""What a group's metrics read now: its pool of instances, their readiness, and each
metric's readings, as `policy.MetricInput`s.

The pool is the group's live instances that are not leaving. While a rollout of the service
is active it is the stable version's instances only (unless the group says otherwise), so a
canary can neither inflate nor starve the fleet (argo-rollouts#4607)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import DateTimeField, F, FloatField, Func, QuerySet, Value

from catalog.choices import LIVE_LIFECYCLES, Lifecycle
from catalog.models import Instance
from deployments.drivers import driver_for
from deployments.drivers.base import DriverError, Target
from deployments.models import Rollout, TrafficRoute
from health.choices import CheckStatus
from health.services import instance_checks, instance_latencies
from scaling.choices import (
    CELERY_ACTIVE,
    CELERY_QUEUED,
    REPORTED_NAMES,
    TERMINATION_OPEN,
    TOTAL_SOURCES,
    Source,
)
from scaling.models import InstanceMetric, ScalingGroup, ScalingMetric, Termination
from scaling.policy import MetricInput, Reading

# Instances that count as the group's: everything alive except the ones already leaving.
POOL_LIFECYCLES = tuple(lc for lc in LIVE_LIFECYCLES if lc != Lifecycle.DRAINING)


@dataclass(frozen=True, slots=True)
class Member:
    """An instance as a decision reads it (3,000 a batch at 1,000 groups: plain values, not
    model instances)."""

    pk: int
    host: str
    port: int
    version: str
    registered_at: datetime


MEMBER_FIELDS = ("service_id", "environment_id", "id", "host", "port", "version", "registered_at")


@dataclass
class Pool:
    """The instances a tick reads, and why it is the set it is."""

    instances: list[Member]
    ready: set[int]
    rollout: Rollout | None = None
    note: str = ""
    readings: dict[int, dict[str, float]] = field(default_factory=dict)
    # Each reading's age in seconds at the tick, for the metrics' windows (instance -> name).
    ages: dict[int, dict[str, float]] = field(default_factory=dict)
    # Live members, the canary's included (the pool may be the stable version only).
    members: int = 0
    # Filled for the whole batch at once when a metric tracks probe latency.
    latencies: dict[int, float | None] | None = None

    @property
    def ids(self) -> list[int]:
        return [i.pk for i in self.instances]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A `ScalingMetric` read as plain values: the decision loop reads 5,000 of them a
    tick at 1,000 groups, and building model instances for them was a third of its time."""

    source: str
    name: str
    target: float | None
    steps: Any
    window_seconds: int

    @property
    def label(self) -> str:
        return self.name or str(self.source)


SPEC_FIELDS = ("group_id", "source", "name", "target", "steps", "window_seconds")


def metric_specs(group_ids: list[int]) -> dict[int, list[MetricSpec]]:
    """Each group's metrics, in their order (one query for the batch)."""
    specs: dict[int, list[MetricSpec]] = {pk: [] for pk in group_ids}
    for group_id, *values in (
        ScalingMetric.objects.filter(group_id__any=group_ids)
        .order_by("group_id", "id")
        .values_list(*SPEC_FIELDS)
    ):
        specs[group_id].append(MetricSpec(*values))
    return specs


def active_rollout(group: ScalingGroup) -> Rollout | None:
    return (
        Rollout.objects.active()
        .filter(service_id=group.service_id, environment_id=group.environment_id)
        .first()
    )


def members(group: ScalingGroup) -> QuerySet[Instance]:
    """The group's live instances that are not being terminated."""
    leaving = Termination.objects.filter(group=group, state__in=TERMINATION_OPEN).values(
        "instance_id"
    )
    return (
        Instance.objects.filter(
            service_id=group.service_id,
            environment_id=group.environment_id,
            lifecycle__in=POOL_LIFECYCLES,
        )
        .exclude(pk__in=leaving)
        .order_by("registered_at", "pk")
    )


def pool(group: ScalingGroup, now: datetime) -> Pool:
    return pools([group], now)[group.pk]


def pools(
    groups: list[ScalingGroup],
    now: datetime,
    specs: dict[int, list[MetricSpec]] | None = None,
) -> dict[int, Pool]:
    """Every group's pool in a fixed number of queries, however many groups there are.

    One decision loop decides hundreds of groups per beat (bench/scaling: 1,000 groups);
    loading each group's pool on its own cost 17 round trips a group. `specs` are the
    groups' metrics when the caller has read them already."""
    if not groups:
        return {}
    if specs is None:
        specs = metric_specs([g.pk for g in groups])
    pairs = {(g.service_id, g.environment_id): g for g in groups}
    leaving = set(
        Termination.objects.filter(
            group_id__any=[g.pk for g in groups], state__in=TERMINATION_OPEN
        ).values_list("instance_id", flat=True)
    )
    alive: dict[tuple[int, int], list[Member]] = {pair: [] for pair in pairs}
    for service_id, environment_id, *values in (
        Instance.objects.filter(
            service_id__any=list({s for s, _ in pairs}),
            environment_id__any=list({e for _, e in pairs}),
            lifecycle__in=POOL_LIFECYCLES,
        )
        .order_by("registered_at", "pk")
        .values_list(*MEMBER_FIELDS)
    ):
        key = (service_id, environment_id)
        if key in alive and values[0] not in leaving:
            alive[key].append(Member(*values))
    rollouts: dict[tuple[int, int], Rollout] = {}
    for rollout in Rollout.objects.active().filter(
        service_id__any=list({s for s, _ in pairs}),
        environment_id__any=list({e for _, e in pairs}),
    ):
        rollouts.setdefault((rollout.service_id, rollout.environment_id), rollout)
    found: dict[int, Pool] = {}
    for pair, group in pairs.items():
        instances = alive[pair]
        active = rollouts.get(pair)
        note = ""
        members = len(instances)
        if active is not None and group.stable_pool_only_during_rollout and active.from_version:
            stable = [i for i in instances if i.version == active.from_version]
            note = (
                f"rollout #{active.pk} active: load read on the {len(stable)} stable "
                f"{active.from_version} instance(s) only"
            )
            instances = stable
        found[group.pk] = Pool(instances, set(), active, note, members=members)
    ids = [i.pk for p in found.values() for i in p.instances]
    statuses, latencies = instance_checks(ids)
    if any(m.source == Source.LATENCY for g in groups for m in specs.get(g.pk, ())):
        for p in found.values():
            p.latencies = latencies
    owner = {i.pk: p for p in found.values() for i in p.instances}
    for group in groups:
        p = found[group.pk]
        settled = now - timedelta(seconds=group.readiness_delay_seconds)
        p.ready = {
            i.pk
            for i in p.instances
            if statuses.get(i.pk) in (CheckStatus.PASS, CheckStatus.WARN)
            and i.registered_at <= settled
        }
    # Each reading's age in seconds, computed by the database: 15,000 readings a batch at
    # 1,000 groups, and parsing their timestamps was a tenth of the loop's time.
    age = Func(
        Value(now, output_field=DateTimeField()) - F("at"),
        template="EXTRACT(EPOCH FROM %(expressions)s)",
        output_field=FloatField(),
    )
    for name, instance_id, value, seconds in (
        InstanceMetric.objects.filter(instance_id__any=ids)
        .annotate(age=age)
        .values_list("name", "instance_id", "value", "age")
    ):
        p = owner[instance_id]
        p.readings.setdefault(instance_id, {})[name] = value
        p.ages.setdefault(instance_id, {})[name] = seconds
    return found


def metric_input(
    metric: MetricSpec, found: Pool, group: ScalingGroup, now: datetime
) -> MetricInput:
    """The readings `metric` tracks, per instance or as the group's total."""
    target = float(metric.target or 0)
    label = metric.label
    if metric.source == Source.LATENCY:
        latencies = found.latencies
        if latencies is None:
            latencies = instance_latencies(found.ids)
        return MetricInput(
            label,
            target,
            tuple(
                Reading(str(i.pk), latencies.get(i.pk), i.pk in found.ready)
                for i in found.instances
            ),
        )
    if metric.source == Source.REQUEST_RATE:
        return MetricInput(label, target, total=_request_rate(group, found))
    fresh = _fresh_values(metric, found, now)
    if metric.source == Source.CELERY_BACKLOG:
        queued = [v[CELERY_QUEUED] for v in fresh.values() if CELERY_QUEUED in v]
        active = [v[CELERY_ACTIVE] for v in fresh.values() if CELERY_ACTIVE in v]
        # The queue is shared (each worker sees all of it); active tasks are each worker's own.
        total = (max(queued, default=0.0) + sum(active)) if queued or active else None
        return MetricInput(label, target, total=total)
    name = REPORTED_NAMES.get(Source(metric.source), metric.name)
    if metric.source in TOTAL_SOURCES:
        values = [v[name] for v in fresh.values() if name in v]
        return MetricInput(label, target, total=sum(values) if values else None)
    return MetricInput(
        label,
        target,
        tuple(
            Reading(str(i.pk), fresh.get(i.pk, {}).get(name), i.pk in found.ready)
            for i in found.instances
        ),
    )


def _fresh_values(metric: MetricSpec, found: Pool, now: datetime) -> dict[int, dict[str, float]]:
    """The pool's readings no older than the metric's window."""
    window = metric.window_seconds
    fresh: dict[int, dict[str, float]] = {}
    for instance_id, values in found.readings.items():
        ages = found.ages.get(instance_id, {})
        for name, value in values.items():
            seconds = ages.get(name)
            if seconds is not None and seconds <= window:
                fresh.setdefault(instance_id, {})[name] = value
    return fresh


def _request_rate(group: ScalingGroup, found: Pool) -> float | None:
    """Requests per second the router sends the pool now (HAProxy's per-server req_rate)."""
    route = (
        TrafficRoute.objects.select_related("router")
        .filter(service_id=group.service_id, environment_id=group.environment_id)
        .first()
    )
    if route is None or not found.instances:
        return None
    targets = tuple(Target(i.host, i.port, i.pk) for i in found.instances)
    try:
        stats = driver_for(route).stats(targets, {})
    except DriverError:
        return None
    rates = [s.request_rate for s in stats.values() if s.request_rate is not None]
    return float(sum(rates)) if rates else None


def describe(metric: MetricInput) -> dict[str, Any]:
    """A metric's input as a decision stores and shows it."""
    if not metric.per_instance:
        return {"metric": metric.name, "target": metric.target, "total": metric.total}
    values = [r.value for r in metric.readings if r.value is not None and r.ready]
    return {
        "metric": metric.name,
        "target": metric.target,
        "average": sum(values) / len(values) if values else None,
        "readings": len([r for r in metric.readings if r.value is not None]),
        "missing": len([r for r in metric.readings if r.value is None]),
        "not_ready": len([r for r in metric.readings if not r.ready]),
    }
