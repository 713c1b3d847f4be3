"""What other apps may ask of circuits: circuits towards a service, and the dependency edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from catalog.models import Service
from circuits.choices import AggregateState
from circuits.models import Circuit, CircuitInstanceState, CircuitSample

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


@dataclass(frozen=True)
class CallFigures:
    """What one caller's circuit saw of its calls to a service, over the reports counted.

    Rates are percent, combined across the caller's instances by call volume as the
    circuit's aggregate is; latency is the instances' reported p99, combined the same way.
    `calls` is what the reports count as their calls: the breaker's window (the client
    library's pushes, Hystrix), or the calls since the previous scrape (Prometheus).
    """

    circuit_id: int
    circuit: str  # the circuit's name
    caller: str  # the calling service's slug
    reports: int  # instance reports counted (0: none in the period asked)
    calls: int
    failure_rate: float | None
    slow_call_rate: float | None
    latency_p99_ms: float | None
    newest: datetime | None  # the latest report counted

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "failure_rate": _rounded(self.failure_rate),
            "slow_call_rate": _rounded(self.slow_call_rate),
            "latency_p99_ms": _rounded(self.latency_p99_ms),
            "reports": self.reports,
            "at": self.newest.isoformat() if self.newest else None,
        }


def calls_towards(
    service_id: int,
    environment_id: int,
    *,
    reported_after: datetime | None = None,
    reported_before: datetime | None = None,
    now: datetime | None = None,
) -> list[CallFigures]:
    """Per circuit guarding calls to this service, its callers' figures (two queries).

    Only instance reports that are not stale count, made within `reported_after` and
    `reported_before` when given; a circuit with none still appears, with `reports` 0.
    """
    now = now or timezone.now()
    edge = reported_before or now
    fresh_after = edge - timedelta(seconds=settings.SIGNALBOX_CIRCUITS_STALE_SECONDS)
    circuits = list(
        Circuit.objects.filter(protects_service_id=service_id, environment_id=environment_id)
        .order_by("service__slug", "name")
        .values_list("id", "name", "service__slug")
    )
    states = CircuitInstanceState.objects.filter(
        circuit_id__in=[c[0] for c in circuits], received_at__gte=fresh_after
    )
    if reported_before is None:
        states = states.filter(stale=False)
    else:
        states = states.filter(reported_at__lte=reported_before)
    if reported_after is not None:
        states = states.filter(reported_at__gte=reported_after)
    rows: dict[int, list[tuple[Any, ...]]] = {}
    for row in states.values_list(
        "circuit_id", "calls", "failure_rate", "slow_call_rate", "latency_p99_ms", "reported_at"
    ):
        rows.setdefault(row[0], []).append(row[1:])
    return [_figures(pk, name, caller, rows.get(pk, [])) for pk, name, caller in circuits]


def samples_before(
    service_id: int, environment_id: int, before: datetime, max_age: timedelta
) -> dict[int, CallFigures]:
    """Per circuit towards this service, its last whole minute of history before `before`.

    The minute `before` falls in is left out: it may already hold what came after.
    """
    latest_bucket = before.replace(second=0, microsecond=0) - timedelta(minutes=1)
    rows = (
        CircuitSample.objects.filter(
            circuit__protects_service_id=service_id,
            circuit__environment_id=environment_id,
            bucket__lte=latest_bucket,
            bucket__gte=before - max_age,
        )
        .order_by("circuit_id", "-bucket")
        .values_list(
            "circuit_id",
            "circuit__name",
            "circuit__service__slug",
            "bucket",
            "call_volume",
            "failure_rate",
            "slow_call_rate",
            "total_instances",
        )
    )
    found: dict[int, CallFigures] = {}
    for pk, name, caller, bucket, volume, failure, slow, instances in rows:
        if pk not in found:
            found[pk] = CallFigures(
                pk,
                name,
                caller,
                instances,
                volume,
                failure,
                slow,
                None,
                bucket + timedelta(minutes=1),
            )
    return found


def _figures(pk: int, name: str, caller: str, rows: list[tuple[Any, ...]]) -> CallFigures:
    def weighted(index: int) -> float | None:
        pairs = [(r[index], r[0]) for r in rows if r[index] is not None and r[0] > 0]
        volume = sum(calls for _, calls in pairs)
        return sum(v * calls for v, calls in pairs) / volume if volume else None

    return CallFigures(
        circuit_id=pk,
        circuit=name,
        caller=caller,
        reports=len(rows),
        calls=sum(r[0] for r in rows),
        failure_rate=weighted(1),
        slow_call_rate=weighted(2),
        latency_p99_ms=weighted(3),
        newest=max((r[4] for r in rows), default=None),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


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
