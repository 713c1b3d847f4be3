"""What the scaling pages show: a group's settings beside HPA's names, its instances, its
decisions explained ("why did it scale?"), its launches and drain reports; the list of
groups. Each builder runs a fixed number of queries, however long the history."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet

from catalog.choices import LIVE_LIFECYCLES, Lifecycle
from catalog.models import Instance, Team
from health.services import instance_status
from scaling.choices import (
    DELETION_COST,
    IN_FLIGHT,
    LAUNCH_OPEN,
    TERMINATION_OPEN,
    TOTAL_SOURCES,
    PolicyKind,
    Source,
)
from scaling.models import Decision, InstanceMetric, Launch, ScalingGroup, Termination

DECISIONS_PER_PAGE = 25
LAUNCH_ROWS = 20
TERMINATION_ROWS = 20
INSTANCE_ROWS = 200
GROUPS_PER_PAGE = 100

# The instances a group page lists: alive, or leaving but not gone yet.
SHOWN_LIFECYCLES = (*LIVE_LIFECYCLES, Lifecycle.READY_TO_TERMINATE)
LEAVING = (Lifecycle.DRAINING, Lifecycle.READY_TO_TERMINATE)

# HPA's names for a policy's type (`HPAScalingPolicy.type`).
HPA_POLICY_TYPES = {PolicyKind.INSTANCES: "Pods", PolicyKind.PERCENT: "Percent"}
# What each source would be in an HPA's `spec.metrics`.
HPA_METRIC = {
    Source.CPU: "Resource cpu, target.averageUtilization",
    Source.MEMORY: "Resource memory, target.averageValue",
    Source.LATENCY: "Pods metric, target.averageValue",
    Source.CUSTOM: "Pods metric, target.averageValue",
    Source.REQUEST_RATE: "External metric, target.averageValue",
    Source.CUSTOM_TOTAL: "External metric, target.averageValue",
    Source.CELERY_BACKLOG: "External metric, target.averageValue",
}


@dataclass(frozen=True)
class Setting:
    """One of a group's settings as the page shows it: ours, its value, the anchor's name."""

    name: str
    value: str
    theirs: str
    meaning: str


def _policies(raw: Any) -> str:
    parts = [
        f"{p['type']} {p['value']} per {p['period_seconds']} s "
        f"(type {HPA_POLICY_TYPES.get(p['type'], p['type'])}, value {p['value']}, "
        f"periodSeconds {p['period_seconds']})"
        for p in (raw or [])
    ]
    return "; ".join(parts) or "none"


def _seconds(value: int | None) -> str:
    return "—" if value is None else f"{value} s"


def settings_of(group: ScalingGroup) -> list[Setting]:
    up, down = "behavior.scaleUp.", "behavior.scaleDown."
    flag = "--horizontal-pod-autoscaler-"
    return [
        Setting("min_instances", str(group.min_instances), "spec.minReplicas", "never fewer"),
        Setting("max_instances", str(group.max_instances), "spec.maxReplicas", "never more"),
        Setting("desired", str(group.desired), "status.desiredReplicas", "what converge runs"),
        Setting("tolerance", f"{group.tolerance:g}", flag + "tolerance",
                "a ratio this close to 1 changes nothing"),
        Setting("sync_seconds", _seconds(group.sync_seconds), flag + "sync-period",
                "how often the group is decided"),
        Setting("readiness_delay_seconds", _seconds(group.readiness_delay_seconds),
                flag + "initial-readiness-delay", "a new instance counts as 0 for scale-up"),
        Setting("up_stabilization_seconds", _seconds(group.up_stabilization_seconds),
                up + "stabilizationWindowSeconds", "scale up to the lowest recommendation of it"),
        Setting("up_policies", _policies(group.up_policies), up + "policies",
                "the most a scale-up adds per period"),
        Setting("up_select", group.get_up_select_display(), up + "selectPolicy",
                "which policy wins"),
        Setting("down_stabilization_seconds", _seconds(group.down_stabilization_seconds),
                down + "stabilizationWindowSeconds",
                "scale down to the highest recommendation of it"),
        Setting("down_policies", _policies(group.down_policies), down + "policies",
                "the most a scale-down removes per period"),
        Setting("down_select", group.get_down_select_display(), down + "selectPolicy",
                "which policy wins"),
        Setting("launch_deadline_seconds", _seconds(group.launch_deadline_seconds),
                "Deployment progressDeadlineSeconds (nearest)",
                "a launch not healthy by then is removed"),
        Setting("drain_timeout_seconds", _seconds(group.drain_timeout_seconds),
                "ALB deregistration_delay.timeout_seconds (nearest)",
                "the longest wait for the router to stop routing"),
        Setting("lifecycle_timeout_seconds", _seconds(group.lifecycle_timeout_seconds),
                "AWS lifecycle hook HeartbeatTimeout",
                "the longest wait for ready-to-terminate; heartbeats restart it"),
        Setting("termination_grace_seconds", _seconds(group.termination_grace_seconds),
                "Kubernetes terminationGracePeriodSeconds", "SIGTERM, then SIGKILL after it"),
        Setting("freeze_scale_in_during_rollout", _yes(group.freeze_scale_in_during_rollout),
                "—", "no scale-in while a rollout is active"),
        Setting("stable_pool_only_during_rollout", _yes(group.stable_pool_only_during_rollout),
                "—", "load read on the stable version only during a rollout"),
        Setting("restart_every_seconds", _seconds(group.restart_every_seconds), "—",
                "a rolling restart this often (slow leaks)"),
    ]  # fmt: skip


def _yes(value: bool) -> str:
    return "yes" if value else "no"


@dataclass(frozen=True)
class MetricRow:
    """One metric the group tracks, with what it would be in an HPA."""

    label: str
    source: str
    target: str
    window: int
    hpa: str


def metrics_of(group: ScalingGroup) -> list[MetricRow]:
    rows = []
    for metric in group.metrics.all():
        if metric.steps:
            target = "steps: " + "; ".join(_step(s) for s in metric.steps)
            hpa = "— (AWS step scaling)"
        else:
            each = " per instance" + (" (of the group's total)" if _total(metric.source) else "")
            target = f"{metric.target:g}{each}" if metric.target is not None else "—"
            hpa = HPA_METRIC.get(Source(metric.source), "—")
        rows.append(
            MetricRow(metric.label, metric.get_source_display(), target, metric.window_seconds, hpa)
        )
    return rows


def _total(source: str) -> bool:
    return source in TOTAL_SOURCES


def _step(step: dict[str, Any]) -> str:
    low = "-inf" if step.get("lower") is None else f"{step['lower']:g}"
    high = "inf" if step.get("upper") is None else f"{step['upper']:g}"
    unit = "%" if step.get("kind") == PolicyKind.PERCENT else ""
    return f"[{low}, {high}) {int(step['change']):+d}{unit}"


# -- instances --------------------------------------------------------------------------------


@dataclass
class InstanceRow:
    """An instance of the group now: where it is in its life and what it reported."""

    instance: Instance
    phase: str  # launching | in_service | draining
    detail: str
    health: str
    launch: Launch | None = None
    termination: Termination | None = None
    protected_until: datetime | None = None
    protected_why: str = ""
    in_flight: float | None = None
    deletion_cost: float | None = None


def instance_rows(group: ScalingGroup, now: datetime) -> list[InstanceRow]:
    instances = list(
        Instance.objects.filter(
            service_id=group.service_id,
            environment_id=group.environment_id,
            lifecycle__in=SHOWN_LIFECYCLES,
        )
        .select_related("protection")
        .order_by("registered_at", "pk")[:INSTANCE_ROWS]
    )
    ids = [i.pk for i in instances]
    launches = {
        launch.instance_id: launch
        for launch in Launch.objects.filter(group=group, state__in=LAUNCH_OPEN, instance_id__in=ids)
    }
    leaving = {
        t.instance_id: t
        for t in Termination.objects.filter(
            group=group, state__in=TERMINATION_OPEN, instance_id__in=ids
        )
    }
    reported: dict[int, dict[str, float]] = defaultdict(dict)
    for instance_id, name, value in InstanceMetric.objects.filter(
        instance_id__in=ids, name__in=(IN_FLIGHT, DELETION_COST)
    ).values_list("instance_id", "name", "value"):
        reported[instance_id][name] = value
    health = instance_status(ids)
    rows = []
    for instance in instances:
        row = InstanceRow(instance, *_phase(instance, launches, leaving), health[instance.pk])
        row.launch, row.termination = launches.get(instance.pk), leaving.get(instance.pk)
        protection = getattr(instance, "protection", None)
        if protection is not None and protection.active(now):
            row.protected_until, row.protected_why = protection.until, protection.reason
        row.in_flight = reported[instance.pk].get(IN_FLIGHT)
        row.deletion_cost = reported[instance.pk].get(DELETION_COST)
        rows.append(row)
    return rows


def _phase(
    instance: Instance, launches: dict[Any, Launch], leaving: dict[Any, Termination]
) -> tuple[str, str]:
    termination = leaving.get(instance.pk)
    if termination is not None:
        return "draining", termination.get_state_display()
    if instance.lifecycle in LEAVING:
        return "draining", instance.get_lifecycle_display()
    launch = launches.get(instance.pk)
    if instance.lifecycle == Lifecycle.LAUNCHING or launch is not None:
        return "launching", launch.get_state_display() if launch else "Launching"
    return "in_service", instance.get_lifecycle_display()


@dataclass(frozen=True)
class Counts:
    in_service: int = 0
    launching: int = 0
    draining: int = 0


def counts_of(rows: list[InstanceRow]) -> Counts:
    phases = [r.phase for r in rows]
    return Counts(phases.count("in_service"), phases.count("launching"), phases.count("draining"))


# -- decisions explained --------------------------------------------------------------------


@dataclass(frozen=True)
class InputRow:
    """One metric a decision read: its value against its target, and the formula it gave."""

    metric: str
    per_instance: bool
    value: float | None
    target: float | None
    ratio: float | None
    readings: int | None
    missing: int
    not_ready: int
    formula: str


@dataclass
class Explained:
    """A decision as the page explains it: the metrics, the other steps, what held it back."""

    decision: Decision
    inputs: list[InputRow] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    @property
    def direction(self) -> str:
        change = self.decision.desired - self.decision.current
        return "up" if change > 0 else "down" if change < 0 else "same"


def explain(decision: Decision) -> Explained:
    steps = [str(s) for s in (decision.steps or [])]
    inputs = []
    for raw in decision.inputs or []:
        name = str(raw.get("metric", "?"))
        formula = next((s for s in steps if s.startswith(f"{name}:")), "")
        if formula:
            steps.remove(formula)
        per_instance = "total" not in raw
        value = raw.get("average") if per_instance else raw.get("total")
        target = raw.get("target")
        ratio = None
        if value is not None and target:
            carried = 1 if per_instance else max(decision.current, 1)
            ratio = value / (target * carried)
        missing, not_ready = int(raw.get("missing") or 0), int(raw.get("not_ready") or 0)
        readings = raw.get("readings")
        inputs.append(
            InputRow(
                name, per_instance, value, target, ratio, readings, missing, not_ready, formula
            )
        )
    if decision.held_by and decision.held_by in steps:
        steps.remove(decision.held_by)
    return Explained(decision, inputs, steps)


@dataclass(frozen=True)
class LaunchRow:
    """A launch with how long it took to turn healthy and to take traffic."""

    launch: Launch

    @property
    def seconds_to_healthy(self) -> float | None:
        return _since(self.launch.started_at, self.launch.healthy_at)

    @property
    def seconds_to_traffic(self) -> float | None:
        return _since(self.launch.started_at, self.launch.in_service_at)

    @property
    def probe_output(self) -> str:
        output = (self.launch.last_probe_output or {}).get("output")
        if output in (None, "", {}, []):
            return ""
        return output if isinstance(output, str) else json.dumps(output, indent=2, default=str)


def _since(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds()


def decision_page(group: ScalingGroup, number: Any) -> Page[Decision]:
    rows = Decision.objects.filter(group=group).order_by("-at", "-id")
    return Paginator(rows, DECISIONS_PER_PAGE).get_page(number)


# -- the page's sections ----------------------------------------------------------------------


def summary_context(group: ScalingGroup, now: datetime) -> dict[str, Any]:
    rows = instance_rows(group, now)
    return {
        "group": group,
        "instances": rows,
        "instances_shown": INSTANCE_ROWS,
        "counts": counts_of(rows),
        "settings": settings_of(group),
        "metrics": metrics_of(group),
    }


def history_context(group: ScalingGroup, number: Any = 1) -> dict[str, Any]:
    page = decision_page(group, number)
    return {
        "group": group,
        "decisions": [explain(d) for d in page.object_list],
        "decision_page": page,
        "launches": [
            LaunchRow(launch) for launch in group.launches.select_related("instance")[:LAUNCH_ROWS]
        ],
        "terminations": list(group.terminations.all()[:TERMINATION_ROWS]),
    }


def group_query() -> QuerySet[ScalingGroup]:
    return ScalingGroup.objects.select_related(
        "service", "service__team", "environment"
    ).prefetch_related("metrics")


# -- the list ---------------------------------------------------------------------------------


@dataclass
class GroupRow:
    """A group in the list: desired against what runs, paused or not, its last decision."""

    group: ScalingGroup
    counts: Counts
    last: Explained | None


def counts_for(groups: list[ScalingGroup]) -> dict[int, Counts]:
    """Each group's instances by phase (in service, launching, draining): one query."""
    pairs = {(g.service_id, g.environment_id) for g in groups}
    found: dict[tuple[int, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if groups:
        for service_id, environment_id, lifecycle, n in (
            Instance.objects.filter(
                service_id__in={s for s, _ in pairs},
                environment_id__in={e for _, e in pairs},
                lifecycle__in=SHOWN_LIFECYCLES,
            )
            .values_list("service_id", "environment_id", "lifecycle")
            .annotate(n=Count("id"))
            .order_by()
        ):
            found[(service_id, environment_id)][_lifecycle_phase(lifecycle)] += n
    counts = {}
    for group in groups:
        counted = found[(group.service_id, group.environment_id)]
        counts[group.pk] = Counts(
            counted["in_service"], counted["launching"], counted["draining"]
        )
    return counts


def group_rows(groups: list[ScalingGroup]) -> list[GroupRow]:
    """Rows for these groups: two queries, however many groups and decisions."""
    counts = counts_for(groups)
    last = {
        d.group_id: d
        for d in Decision.objects.filter(group_id__in=[g.pk for g in groups])
        .order_by("group_id", "-at", "-id")
        .distinct("group_id")
    }
    rows = []
    for group in groups:
        decision = last.get(group.pk)
        rows.append(GroupRow(group, counts[group.pk], explain(decision) if decision else None))
    return rows


def _lifecycle_phase(lifecycle: str) -> str:
    if lifecycle == Lifecycle.LAUNCHING:
        return "launching"
    return "draining" if lifecycle in LEAVING else "in_service"


def groups_of(team: Team | None) -> QuerySet[ScalingGroup]:
    groups = ScalingGroup.objects.select_related("service", "service__team", "environment")
    if team is not None:
        groups = groups.filter(service__team=team)
    return groups.order_by("service__team__slug", "service__slug", "environment__order")
