"""The service page's scaling chart: desired against in-service instances and the driving
metric over the last hours, with scale, deploy and incident markers, drawn on the server as
SVG.

Nine queries whatever the history (one when the service has no scaling group). Desired
comes from the group's decisions; in service is counted back from now through the
launches that went into service and the terminations that started draining (instances
registered outside the group count as a constant); the metric is the group's first one,
from the instances' per-minute reports, or else from what each decision read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Sum
from django.utils import timezone

from catalog.choices import Lifecycle
from catalog.models import Environment, Instance, Service
from controlplane.models import Event
from scaling.choices import REPORTED_NAMES, TOTAL_SOURCES, ScalingEvent, Source
from scaling.models import Decision, Launch, MetricMinute, ScalingGroup, ScalingMetric, Termination

HOURS = 6
ROWS = 500  # decisions, launches, terminations and markers read per chart, at most
WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 34, 46, 12, 20
IN_SERVICE = (Lifecycle.REGISTERED, Lifecycle.ACTIVE, Lifecycle.STALE)
SCALE_MARKS = (ScalingEvent.DECIDED, ScalingEvent.SCALED_UP, ScalingEvent.SCALED_DOWN)
MARK_SHAPES = {  # an arrow on the chart and a word in its title
    ScalingEvent.DECIDED: "◆",
    ScalingEvent.SCALED_UP: "▲",
    ScalingEvent.SCALED_DOWN: "▼",
}

Series = list[tuple[datetime, float]]


@dataclass(frozen=True)
class Mark:
    """A marker at x: its kind (an event's, a rollout's state), a short label, its title."""

    x: float
    kind: str
    label: str
    title: str
    width: float = 0.0  # an incident's band: from when it fired to its resolution (or now)


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass
class ScalingChart:
    """Everything the chart's template draws, already in the SVG's coordinates."""

    group: ScalingGroup
    metric: str = ""
    metric_unit: str = ""
    desired: str = ""
    actual: str = ""
    metric_points: str = ""
    target_y: float | None = None
    marks: list[Mark] = field(default_factory=list)
    deploys: list[Mark] = field(default_factory=list)
    incidents: list[Mark] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    metric_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    desired_now: int = 0
    actual_now: int = 0
    scale_events: int = 0
    width: int = WIDTH
    height: int = HEIGHT
    hours: int = HOURS

    @property
    def plot_left(self) -> int:
        return LEFT

    @property
    def plot_right(self) -> int:
        return WIDTH - RIGHT

    @property
    def plot_bottom(self) -> int:
        return HEIGHT - BOTTOM

    @property
    def plot_top(self) -> int:
        return TOP

    @property
    def plot_height(self) -> int:
        return HEIGHT - BOTTOM - TOP


@dataclass
class ServiceScaling:
    """The service's groups, and the chart of the one in the page's environment."""

    groups: list[ScalingGroup]
    chart: ScalingChart | None = None


class _Frame:
    """Maps time and values to the SVG's coordinates."""

    def __init__(self, since: datetime, now: datetime) -> None:
        self.since, self.span = since, max((now - since).total_seconds(), 1.0)

    def x(self, at: datetime) -> float:
        share = min(max((at - self.since).total_seconds() / self.span, 0.0), 1.0)
        return round(LEFT + share * (WIDTH - LEFT - RIGHT), 1)

    @staticmethod
    def y(value: float, top: float) -> float:
        share = min(max(value / top, 0.0), 1.0) if top else 0.0
        return round(HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM), 1)


def for_service(
    service: Service,
    environment: Environment | None,
    markers: Sequence[dict[str, Any]],
    now: datetime | None = None,
) -> ServiceScaling:
    """`markers`: the health charts' (dashboard.service.chart_markers); this chart draws
    their deploys and incidents, and its scale marks from the group's own events."""
    groups = list(
        ScalingGroup.objects.filter(service=service)
        .select_related("environment")
        .prefetch_related("metrics")
        .order_by("environment__order")
    )
    found = ServiceScaling(groups)
    group = next((g for g in groups if environment and g.environment_id == environment.pk), None)
    if group is not None:
        found.chart = chart(group, markers, now or timezone.now())
    return found


def chart(group: ScalingGroup, markers: Sequence[dict[str, Any]], now: datetime) -> ScalingChart:
    since = now - timedelta(hours=HOURS)
    frame = _Frame(since, now)
    decisions = list(
        Decision.objects.filter(group=group, at__gte=since)
        .order_by("at", "id")
        .values_list("at", "current", "desired", "inputs")[:ROWS]
    )
    desired = _desired(group, decisions, since)
    actual = _in_service(group, since)
    metric = next(iter(group.metrics.all()), None)
    values = _metric(group, metric, decisions, since) if metric is not None else []
    drawn = ScalingChart(group, desired_now=group.desired, actual_now=int(actual[-1][1]))
    top = max([v for _, v in desired + actual] + [1.0]) + 1
    drawn.desired = _steps(desired, frame, top, now)
    drawn.actual = _steps(actual, frame, top, now)
    drawn.y_ticks = [Tick(frame.y(v, top), f"{v:g}") for v in sorted({0, round(top / 2), top})]
    if metric is not None:
        _draw_metric(drawn, metric, values, frame)
    drawn.marks = _scale_marks(group, since, frame)
    drawn.scale_events = len(drawn.marks)
    deploys = [m for m in markers if m.get("kind", "deploy") == "deploy"]
    drawn.deploys = _deploy_marks(deploys, since, now, frame)
    drawn.incidents = _incident_marks(
        [m for m in markers if m.get("kind") == "incident"], since, now, frame
    )
    drawn.x_ticks = [
        Tick(frame.x(since + timedelta(hours=h)), f"{since + timedelta(hours=h):%H:%M}")
        for h in range(HOURS + 1)
    ]
    return drawn


def _desired(group: ScalingGroup, decisions: list[tuple[Any, ...]], since: datetime) -> Series:
    before = (
        Decision.objects.filter(group=group, at__lt=since)
        .order_by("-at", "-id")
        .values_list("desired", flat=True)
        .first()
    )
    if before is None:
        before = decisions[0][1] if decisions else group.desired
    series: Series = [(since, float(before))]
    series += [(at, float(desired)) for at, _, desired, _ in decisions]
    return series


def _in_service(group: ScalingGroup, since: datetime) -> Series:
    """In-service instances over the window, counted back from now."""
    count = Instance.objects.filter(
        service_id=group.service_id, environment_id=group.environment_id, lifecycle__in=IN_SERVICE
    ).count()
    changes = [
        (at, 1)
        for at in Launch.objects.filter(group=group, in_service_at__gte=since)
        .order_by("-in_service_at")
        .values_list("in_service_at", flat=True)[:ROWS]
        if at is not None
    ]
    changes += [
        (at, -1)
        for at in Termination.objects.filter(group=group, started_at__gte=since)
        .order_by("-started_at")
        .values_list("started_at", flat=True)[:ROWS]
    ]
    value = count
    after: Series = []
    for at, delta in sorted(changes, reverse=True):
        after.append((at, float(value)))
        value = max(0, value - delta)
    after.reverse()
    return [(since, float(value)), *after]


def _metric(
    group: ScalingGroup, metric: ScalingMetric, decisions: list[tuple[Any, ...]], since: datetime
) -> Series:
    """The metric per minute from the instances' reports, or else as each decision read it."""
    name = REPORTED_NAMES.get(Source(metric.source), metric.name)
    reported = metric.source in (Source.CPU, Source.MEMORY, Source.CUSTOM, Source.CUSTOM_TOTAL)
    if reported and name:
        rows = MetricMinute.objects.filter(
            instance__service_id=group.service_id,
            instance__environment_id=group.environment_id,
            name=name,
            minute__gte=since,
        ).values("minute")
        if metric.source in TOTAL_SOURCES:
            summed = rows.annotate(value=Sum(F("total") / F("count"))).order_by("minute")
            series = [(r["minute"], float(r["value"])) for r in summed]
        else:
            averaged = rows.annotate(t=Sum("total"), c=Sum("count")).order_by("minute")
            series = [(r["minute"], r["t"] / r["c"]) for r in averaged if r["c"]]
        if series:
            return series
    found: Series = []
    for at, _, _, inputs in decisions:
        for read in inputs or []:
            value = read.get("average", read.get("total"))
            if read.get("metric") == metric.label and value is not None:
                found.append((at, float(value)))
    return found


def _draw_metric(drawn: ScalingChart, metric: ScalingMetric, values: Series, frame: _Frame) -> None:
    drawn.metric = metric.label
    per_instance = metric.source not in TOTAL_SOURCES
    target = float(metric.target) if metric.target is not None and per_instance else None
    top = max([v for _, v in values] + [target or 0.0, 1.0]) * 1.15
    drawn.metric_points = " ".join(f"{frame.x(at)},{frame.y(v, top)}" for at, v in values)
    drawn.metric_unit = "per instance" if per_instance else "for the group"
    drawn.target_y = frame.y(target, top) if target is not None else None
    drawn.metric_ticks = [Tick(frame.y(v, top), f"{v:.3g}") for v in (0.0, top / 2, top)]


def _steps(series: Series, frame: _Frame, top: float, now: datetime) -> str:
    """A step line's corners: each value holds until the next one."""
    corners: list[str] = []
    previous: float | None = None
    for at, value in [*series, (now, series[-1][1])]:
        x, y = frame.x(at), frame.y(value, top)
        if previous is not None:
            corners.append(f"{x},{previous}")
        corners.append(f"{x},{y}")
        previous = y
    return " ".join(corners)


def _scale_marks(group: ScalingGroup, since: datetime, frame: _Frame) -> list[Mark]:
    events = (
        Event.objects.filter(
            service_id=group.service_id,
            environment_id=group.environment_id,
            action__in=SCALE_MARKS,
            created_at__gte=since,
        )
        .order_by("-created_at")
        .values_list("action", "created_at", "message")[:ROWS]
    )
    return [
        Mark(
            frame.x(at),
            action.removeprefix(ScalingEvent.FAMILY),
            MARK_SHAPES.get(action, "◆"),
            f"{at:%H:%M:%S} {message}",
        )
        for action, at, message in events
    ]


def _deploy_marks(
    markers: Sequence[dict[str, Any]], since: datetime, now: datetime, frame: _Frame
) -> list[Mark]:
    """A line where each rollout of the environment started and where it finished."""
    found = []
    start, end = since.timestamp(), now.timestamp()
    for marker in markers:
        for at, what in ((marker["at"], "started"), (marker.get("until"), "finished")):
            if at is None or not start <= at <= end:
                continue
            when = datetime.fromtimestamp(at, tz=since.tzinfo)
            title = f"{when:%H:%M:%S} rollout #{marker['id']} of {marker['version']} {what}"
            if what == "finished":
                title += f" ({marker['state']})"
            label = str(marker["version"]) if what == "started" else ""
            found.append(Mark(frame.x(when), str(marker["state"]), label, title))
    return found


def _incident_marks(
    markers: Sequence[dict[str, Any]], since: datetime, now: datetime, frame: _Frame
) -> list[Mark]:
    """A band for each incident of the environment over the window: from when it fired to
    when it was resolved, or to now while it is open; none for one resolved before."""
    found = []
    start, end = since.timestamp(), now.timestamp()
    for marker in markers:
        fired, until = marker["at"], marker.get("until")
        if fired > end or (until is not None and until < start):
            continue
        began = datetime.fromtimestamp(max(fired, start), tz=since.tzinfo)
        last = min(until if until is not None else end, end)
        ended = datetime.fromtimestamp(last, tz=since.tzinfo)
        fired_at = datetime.fromtimestamp(fired, tz=since.tzinfo)
        title = f"{fired_at:%H:%M:%S} incident {marker['label']} fired"
        if until is not None:
            title += f", {datetime.fromtimestamp(until, tz=since.tzinfo):%H:%M:%S} resolved"
        else:
            title += f", {str(marker['state']).replace('_', ' ')}"
        x = frame.x(began)
        found.append(
            Mark(x, str(marker["state"]), str(marker["label"]), title, max(frame.x(ended) - x, 1.0))
        )
    return found
