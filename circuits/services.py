"""What other apps may ask of circuits: circuits towards a service, and the dependency edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from catalog.models import Service
from circuits.choices import AggregateState
from circuits.models import Circuit

DECLARED = "declared"
CIRCUIT = "circuit"


@dataclass(frozen=True)
class CircuitView:
    """A circuit as other apps see it: who calls, its aggregated state, how many instances open."""

    id: int
    name: str
    caller: str  # the calling (owning) service's slug
    environment: str
    state: str  # an AggregateState value; 'stale' when no instance reported recently
    open_instances: int
    total_instances: int
    stale_instances: int
    failure_rate: float | None
    call_volume: int
    updated_at: datetime


def current_state(circuit: Circuit, now: datetime | None = None) -> str:
    """The stored aggregate, or stale if nothing reported since the stale time.

    The staleness sweep writes 'stale' every few seconds; this covers the gap so a
    reader never takes a silent circuit for a closed one.
    """
    now = now or timezone.now()
    if circuit.updated_at < now - timedelta(seconds=settings.SIGNALBOX_CIRCUITS_STALE_SECONDS):
        return AggregateState.STALE
    return circuit.state


def circuits_towards(service_id: int, environment_id: int | None) -> list[CircuitView]:
    """The circuits whose protected target is this service (in one environment, or all)."""
    queryset = Circuit.objects.select_related("service", "environment").filter(
        protects_service_id=service_id
    )
    if environment_id is not None:
        queryset = queryset.filter(environment_id=environment_id)
    now = timezone.now()
    return [
        CircuitView(
            id=c.pk,
            name=c.name,
            caller=c.service.slug,
            environment=c.environment.slug,
            state=current_state(c, now),
            open_instances=c.open_instances,
            total_instances=c.total_instances,
            stale_instances=c.stale_instances,
            failure_rate=c.failure_rate,
            call_volume=c.call_volume,
            updated_at=c.updated_at,
        )
        for c in queryset.order_by("service__slug", "environment__order", "name")
    ]


def dependency_edges() -> list[tuple[str, str, str]]:
    """(caller slug, callee slug or 'external:<slug>', 'declared'|'circuit'), sorted, unique.

    An edge both declared and seen through a circuit appears twice, once per source.
    """
    edges: set[tuple[str, str, str]] = set()
    depends = Service.depends_on.through.objects.values_list(
        "from_service__slug", "to_service__slug"
    )
    edges.update((caller, callee, DECLARED) for caller, callee in depends)
    externals = Service.external_dependencies.through.objects.values_list(
        "service__slug", "externaldependency__slug"
    )
    edges.update((caller, f"external:{callee}", DECLARED) for caller, callee in externals)
    guarded = (
        Circuit.objects.exclude(protects_service__isnull=True, protects_external__isnull=True)
        .values_list("service__slug", "protects_service__slug", "protects_external__slug")
        .distinct()
    )
    for caller, service, external in guarded:
        edges.add((caller, service if service else f"external:{external}", CIRCUIT))
    return sorted(edges)
