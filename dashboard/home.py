"""Home: what needs attention now, in a fixed number of SQL queries whatever the fleet size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Count, IntegerField, Value, When

from alerts.choices import IncidentState, Severity
from alerts.models import Incident
from circuits.choices import SEVERITY, AggregateState
from circuits.models import Circuit
from circuits.services import current_state
from deployments.choices import ACTIVE_STATES, RolloutState
from deployments.models import Rollout
from health.choices import ServiceStatus
from health.models import ServiceHealth

# Rows per section: an on-call screen, not an inventory; each section links to the full list.
SECTION_ROWS = 20
# Four rows of tiles on a laptop, a screenful on a phone; the rest are on the health
# overview, problems first.
SERVICE_TILES = 24
# Circuits worth a look: half open and worse (open, forced open). Stale ones have their own
# page; a silent circuit is not a failing one.
CIRCUIT_ATTENTION = SEVERITY[AggregateState.HALF_OPEN]
# What counts as a problem in the tab title and the summary: someone should act on these.
# Acknowledged incidents have someone; forced-open circuits were forced by someone.
PROBLEM_CIRCUITS = (AggregateState.OPEN, AggregateState.HALF_OPEN)


def _firing_first() -> Case:
    return Case(
        When(state=IncidentState.FIRING, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )


def _severity_rank() -> Case:
    return Case(
        When(severity=Severity.PAGE, then=Value(0)),
        When(severity=Severity.TICKET, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


def _worst_first() -> Case:
    return Case(
        When(status=ServiceStatus.DOWN, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )


@dataclass
class CircuitRow:
    """An open circuit on home: the circuit and its state as a reader should take it."""

    circuit: Circuit
    state: str

    @property
    def label(self) -> str:
        return AggregateState(self.state).label


def open_incidents(
    with_counts: bool = True, limit: int = SECTION_ROWS, **filters: Any
) -> tuple[list[Incident], dict[str, int]]:
    """Firing then acknowledged incidents (worst and newest first), and how many of each.

    `limit=0` reads the counts only (home's summary)."""
    queryset = Incident.objects.visible().filter(
        state__in=(IncidentState.FIRING, IncidentState.ACKNOWLEDGED), **filters
    )
    rows = (
        list(
            queryset.select_related("team", "service", "environment").order_by(
                _firing_first(), _severity_rank(), "-fire_at", "-id"
            )[:limit]
        )
        if limit
        else []
    )
    if not with_counts:
        return rows, {}
    counts = dict(queryset.order_by().values_list("state").annotate(n=Count("id")))
    return rows, counts


def unhealthy_services(
    limit: int = SERVICE_TILES, **filters: Any
) -> tuple[list[ServiceHealth], dict[str, int]]:
    """Down then degraded service/environment pairs (production first), and counts per status."""
    queryset = ServiceHealth.objects.filter(**filters)
    rows = (
        list(
            queryset.filter(status__in=(ServiceStatus.DOWN, ServiceStatus.DEGRADED))
            .select_related("service", "service__team", "environment")
            .order_by(_worst_first(), "-environment__order", "service__slug")[:limit]
        )
        if limit
        else []
    )
    counts = dict(queryset.order_by().values_list("status").annotate(n=Count("id")))
    return rows, counts


def active_rollouts(limit: int = SECTION_ROWS, **filters: Any) -> tuple[list[Rollout], int]:
    """Rollouts under way (rolling back and paused first: they may need a person), and how many."""
    queryset = Rollout.objects.filter(state__in=ACTIVE_STATES, **filters)
    needs_eyes = Case(
        When(state=RolloutState.ROLLING_BACK, then=Value(0)),
        When(state=RolloutState.PAUSED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    rows = (
        list(
            queryset.select_related("team", "service", "environment").order_by(
                needs_eyes, "-created_at", "-id"
            )[:limit]
        )
        if limit
        else []
    )
    return rows, queryset.count()


def open_circuits(
    limit: int = SECTION_ROWS, **filters: Any
) -> tuple[list[CircuitRow], dict[str, int]]:
    """Circuits half open or worse (worst first), and counts of those states."""
    queryset = Circuit.objects.filter(severity__gte=CIRCUIT_ATTENTION, **filters)
    rows = (
        list(
            queryset.select_related(
                "service", "environment", "protects_service", "protects_external"
            ).order_by("-severity", "service__slug", "name")[:limit]
        )
        if limit
        else []
    )
    counts = dict(queryset.order_by().values_list("state").annotate(n=Count("id")))
    return [CircuitRow(c, current_state(c)) for c in rows], counts


@dataclass
class Attention:
    """Everything home shows besides the timeline."""

    incidents: list[Incident]
    incident_counts: dict[str, int]
    services: list[ServiceHealth]
    service_counts: dict[str, int]
    rollouts: list[Rollout]
    rollouts_total: int
    circuits: list[CircuitRow]
    circuit_counts: dict[str, int]

    @classmethod
    def now(cls, with_rows: bool = True) -> Attention:
        """What needs attention; `with_rows=False` reads the counts only (the summary)."""
        incidents, incident_counts = open_incidents(limit=SECTION_ROWS if with_rows else 0)
        services, service_counts = unhealthy_services(limit=SERVICE_TILES if with_rows else 0)
        rollouts, rollouts_total = active_rollouts(limit=SECTION_ROWS if with_rows else 0)
        circuits, circuit_counts = open_circuits(limit=SECTION_ROWS if with_rows else 0)
        return cls(
            incidents,
            incident_counts,
            services,
            service_counts,
            rollouts,
            rollouts_total,
            circuits,
            circuit_counts,
        )

    @property
    def firing(self) -> int:
        return self.incident_counts.get(IncidentState.FIRING, 0)

    @property
    def acknowledged(self) -> int:
        return self.incident_counts.get(IncidentState.ACKNOWLEDGED, 0)

    @property
    def down(self) -> int:
        return self.service_counts.get(ServiceStatus.DOWN, 0)

    @property
    def degraded(self) -> int:
        return self.service_counts.get(ServiceStatus.DEGRADED, 0)

    @property
    def healthy(self) -> int:
        return self.service_counts.get(ServiceStatus.HEALTHY, 0)

    @property
    def unhealthy(self) -> int:
        return self.down + self.degraded

    @property
    def open_circuits(self) -> int:
        return sum(self.circuit_counts.get(s, 0) for s in PROBLEM_CIRCUITS)

    @property
    def circuits_total(self) -> int:
        return sum(self.circuit_counts.values())

    @property
    def problems(self) -> int:
        """Firing incidents, down or degraded services, open circuits: the tab title's count."""
        return self.firing + self.unhealthy + self.open_circuits
