"""A service's page: health, instances, rollouts, circuits, dependencies; bounded queries."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone

from alerts.models import Incident
from catalog.choices import LIVE_LIFECYCLES
from catalog.models import Environment, ExternalDependency, Instance, Service
from circuits.choices import SEVERITY, AggregateState
from circuits.models import Circuit, CircuitOverride
from circuits.services import CircuitView, circuits_towards, current_state
from controlplane.models import Event
from dashboard.home import open_incidents
from deployments.choices import ACTIVE_STATES
from deployments.models import Rollout, TrafficRoute
from health.models import InstanceCheck, ServiceHealth, VendorStatus
from scaling.models import Decision

INSTANCE_ROWS = 60
DEPLOY_HISTORY_ROWS = 10  # as deployments.views.SERVICE_HISTORY_ROWS: its pushes show as many
EVENT_ROWS = 15
CIRCUIT_ROWS = 50
# Deploy markers on the charts reach back as far as the longest chart range (30 days).
MARKER_DAYS = 30
MARKER_ROWS = 200


@dataclass
class Dependency:
    """A service or external dependency this one calls, or a service that calls this one."""

    slug: str
    name: str
    url: str
    external: bool = False
    declared: bool = False
    via_circuit: bool = False
    health: str = ""  # in the page's environment; an external one's watched state ('' if none)

    @property
    def sources(self) -> str:
        return " + ".join(
            s for s, on in (("declared", self.declared), ("circuit", self.via_circuit)) if on
        )


@dataclass
class Dependencies:
    calls: list[Dependency] = field(default_factory=list)
    called_by: list[Dependency] = field(default_factory=list)


@dataclass
class OwnedCircuit:
    circuit: Circuit
    state: str
    overrides: list[CircuitOverride] = field(default_factory=list)

    @property
    def label(self) -> str:
        return AggregateState(self.state).label


def pick_environment(environments: list[Environment], wanted: str) -> Environment | None:
    """The asked-for environment, else the first production one, else the first."""
    for env in environments:
        if env.slug == wanted:
            return env
    production = [e for e in environments if e.is_production]
    candidates = production or environments
    return candidates[0] if candidates else None


def healths(service: Service, environments: list[Environment]) -> list[ServiceHealth]:
    """One health per environment (an unsaved 'unknown' one where nothing was derived yet)."""
    found = {h.environment_id: h for h in ServiceHealth.objects.filter(service=service)}
    rows = []
    for env in environments:
        health = found.get(env.pk) or ServiceHealth(service=service, environment=env)
        health.service, health.environment = service, env
        rows.append(health)
    return rows


def instance_checks(service: Service) -> list[InstanceCheck]:
    return list(
        InstanceCheck.objects.filter(instance__service=service)
        .select_related("instance", "instance__service", "instance__environment")
        .order_by("instance__environment__order", "instance__host", "instance__port")[
            :INSTANCE_ROWS
        ]
    )


def versions_by_environment(service: Service) -> dict[int, list[tuple[str, int]]]:
    """Per environment id: (version, live instances running it), commonest first."""
    found: dict[int, list[tuple[str, int]]] = defaultdict(list)
    rows = (
        Instance.objects.filter(service=service, lifecycle__in=LIVE_LIFECYCLES)
        .values_list("environment_id", "version")
        .annotate(n=Count("id"))
        .order_by("environment_id", "-n", "version")
    )
    for env_id, version, n in rows:
        found[env_id].append((version or "?", n))
    return dict(found)


def rollouts(service: Service) -> list[Rollout]:
    """Active rollouts and those of the last MARKER_DAYS, newest first, in one query."""
    since = timezone.now() - timedelta(days=MARKER_DAYS)
    return list(
        Rollout.objects.filter(service=service)
        .filter(Q(state__in=ACTIVE_STATES) | Q(created_at__gte=since))
        .select_related("team", "service", "environment")
        .order_by("-created_at", "-id")[:MARKER_ROWS]
    )


def deploy_markers(history: list[Rollout], environment: Environment | None) -> list[dict[str, Any]]:
    """What the charts mark: when each rollout of this environment started and ended, and how."""
    if environment is None:
        return []
    return [
        {
            "id": r.pk,
            "at": (r.started_at or r.created_at).timestamp(),
            "until": r.finished_at.timestamp() if r.finished_at else None,
            "version": r.to_version,
            "state": r.state,
        }
        for r in history
        if r.environment_id == environment.pk
    ]


def chart_markers(
    service: Service, environment: Environment | None, history: list[Rollout]
) -> list[dict[str, Any]]:
    """Everything the health charts mark on their time axis in this environment: each
    rollout (kind "deploy"), each change of the instance count (kind "scale") and each
    incident of the service (kind "incident"), over the longest chart range; two queries
    besides the rollouts the page has read already."""
    if environment is None:
        return []
    since = timezone.now() - timedelta(days=MARKER_DAYS)
    markers = [{"kind": "deploy", **m} for m in deploy_markers(history, environment)]
    for decision_id, at, current, desired in (
        Decision.objects.filter(
            group__service=service, group__environment=environment, at__gte=since
        )
        .exclude(desired=F("current"))
        .order_by("-at")
        .values_list("pk", "at", "current", "desired")[:MARKER_ROWS]
    ):
        markers.append({
            "kind": "scale", "id": decision_id, "at": at.timestamp(), "until": None,
            "label": f"{current}\u2192{desired}", "state": "up" if desired > current else "down",
        })  # fmt: skip
    for incident_id, at, until, state in (
        Incident.objects.filter(service=service, environment=environment, fire_at__gte=since)
        .exclude(fired_at__isnull=True)
        .order_by("-fire_at")
        .values_list("pk", "fire_at", "resolved_at", "state")[:MARKER_ROWS]
    ):
        markers.append({
            "kind": "incident", "id": incident_id, "at": at.timestamp(),
            "until": until.timestamp() if until else None, "label": f"#{incident_id}",
            "state": state,
        })  # fmt: skip
    return sorted(markers, key=lambda m: m["at"])


def owned_circuits(service: Service) -> list[OwnedCircuit]:
    """Circuits in this service's own code, guarding its calls out, worst first, with the
    overrides operators set on them (here or in every environment)."""
    rows = (
        Circuit.objects.filter(service=service)
        .select_related(
            "service",
            "environment",
            "protects_service",
            "protects_external",
            "protects_external__vendor_status",
        )
        .order_by("-severity", "environment__order", "name")[:CIRCUIT_ROWS]
    )
    standing = list(CircuitOverride.objects.active().filter(service=service))
    return [
        OwnedCircuit(
            c,
            current_state(c),
            [
                o
                for o in standing
                if o.circuit_name == c.name and o.environment_id in (None, c.environment_id)
            ],
        )
        for c in rows
    ]


def towards(service: Service) -> list[CircuitView]:
    """Circuits in other services guarding their calls to this one; worst first."""
    found = circuits_towards(service.pk, None)
    return sorted(found, key=lambda c: -SEVERITY.get(c.state, 0))


def dependencies(
    service: Service,
    environment: Environment | None,
    owned: list[OwnedCircuit],
    incoming: list[CircuitView],
) -> Dependencies:
    """Declared dependencies (both ways) merged with those seen through circuits."""
    calls: dict[str, Dependency] = {}
    called_by: dict[str, Dependency] = {}
    edges = Service.depends_on.through.objects.filter(
        Q(from_service=service) | Q(to_service=service)
    ).select_related("from_service", "to_service")
    for edge in edges:
        if edge.from_service_id == service.pk:
            _service_dep(calls, edge.to_service).declared = True
        if edge.to_service_id == service.pk:
            _service_dep(called_by, edge.from_service).declared = True
    externals: list[ExternalDependency] = list(
        service.external_dependencies.select_related("vendor_status")
    )
    for external in externals:
        _external_dep(calls, external).declared = True
    for row in owned:
        target = row.circuit
        if target.protects_service is not None:
            _service_dep(calls, target.protects_service).via_circuit = True
        elif target.protects_external is not None:
            _external_dep(calls, target.protects_external).via_circuit = True
    for c in incoming:
        if c.caller not in called_by:
            url = reverse("dashboard:service", args=[c.caller])
            called_by[c.caller] = Dependency(c.caller, c.caller, url)
        called_by[c.caller].via_circuit = True
    _add_health([*calls.values(), *called_by.values()], environment)
    return Dependencies(
        calls=sorted(calls.values(), key=lambda d: (d.external, d.slug)),
        called_by=sorted(called_by.values(), key=lambda d: d.slug),
    )


def _service_dep(found: dict[str, Dependency], service: Service) -> Dependency:
    if service.slug not in found:
        found[service.slug] = Dependency(service.slug, service.name, service.get_absolute_url())
    return found[service.slug]


def _external_dep(found: dict[str, Dependency], external: ExternalDependency) -> Dependency:
    key = f"external:{external.slug}"
    if key not in found:
        found[key] = Dependency(external.slug, external.name, external.get_absolute_url(), True)
        # health's watched state, select_related by the callers (no query per dependency)
        watched: VendorStatus | None = getattr(external, "vendor_status", None)
        found[key].health = watched.state if watched is not None else ""
    return found[key]


def _add_health(deps: list[Dependency], environment: Environment | None) -> None:
    slugs = [d.slug for d in deps if not d.external]
    if environment is None or not slugs:
        return
    status = dict(
        ServiceHealth.objects.filter(environment=environment, service__slug__in=slugs).values_list(
            "service__slug", "status"
        )
    )
    for dep in deps:
        if not dep.external:
            dep.health = status.get(dep.slug, "unknown")


def incidents(service: Service) -> list[Incident]:
    """Its firing then acknowledged incidents (the same order as home's)."""
    return open_incidents(service=service, with_counts=False)[0]


def recent_events(service: Service) -> list[Event]:
    return list(
        Event.objects.filter(service=service).select_related("team", "service", "environment")[
            :EVENT_ROWS
        ]
    )


def routed_environments(service: Service) -> set[int]:
    """Environments where a traffic router routes this service: where it can be deployed."""
    return set(
        TrafficRoute.objects.filter(service=service).values_list("environment_id", flat=True)
    )
