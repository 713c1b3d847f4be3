"""Which part of the map to show: a team, a service's neighbourhood, a search, or past
FULL_MAP_SERVICES services by default the services with problems (else the viewer's teams).

A scope is a list of seed services; `topology.graph.build_scoped_graph` builds the map
around them in SQL (the seeds, their direct neighbours and those edges), so a scope costs
what it holds, not what the catalog holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from catalog.models import Environment, Service, Team
from health.choices import ServiceStatus
from health.models import ServiceHealth

# Past this many services the map opens on a scope, not the whole fleet. Measured (bench
# dashboard, 2026-12-04 20:17 UTC, load 3.8): the whole map of 100 services took p50 85 ms,
# p95 128 ms and 286 KB, over the 100 ms target (10,000: 51 s, 29 MB); 60 keeps the demo's
# dozen and a small company's whole map on one page, under it.
FULL_MAP_SERVICES = 60
# Seeds a scope takes at most (a team of 400 services, a search for "svc"): first by slug.
# At 10,000 services 60 problem seeds made 385 nodes and a 157 ms p50 page (load 3.3);
# 25 is a team's size in the bench, whose map took 78 ms.
MAX_SEEDS = 25
# How far a service's neighbourhood reaches (hops along declared dependencies, the last one
# along every source), and the default.
MAX_DEPTH = 3
DEFAULT_DEPTH = 1


@dataclass
class Scope:
    """The seeds of the map and how the page says what it shows."""

    seeds: list[Service] = field(default_factory=list)
    kind: str = "all"  # all, team, service, search, problems, mine, none
    label: str = ""
    more_seeds: bool = False  # the scope held more than MAX_SEEDS services

    @property
    def whole(self) -> bool:
        return self.kind == "all"


class ScopeError(ValueError):
    """A scope parameter names nothing: (field, reason)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _seeds(services: object) -> tuple[list[Service], bool]:
    found = list(services.order_by("slug")[: MAX_SEEDS + 1])  # type: ignore[attr-defined]
    return found[:MAX_SEEDS], len(found) > MAX_SEEDS


def pick_scope(
    *,
    environment: Environment | None,
    total_services: int,
    team: str = "",
    service: str = "",
    depth: str = "",
    search: str = "",
    user_id: int | None = None,
) -> Scope:
    """The scope the parameters ask for; without any, the whole map up to FULL_MAP_SERVICES
    services, past it the services with problems (down or degraded), else the viewer's."""
    if team:
        found = Team.objects.filter(slug=team).first()
        if found is None:
            raise ScopeError("team", f"no team {team!r}")
        seeds, more = _seeds(Service.objects.filter(team=found))
        return Scope(seeds, "team", f"team {found.slug}", more)
    if service:
        return _neighbourhood(service, depth)
    if search.strip():
        words = search.strip()
        seeds, more = _seeds(
            Service.objects.filter(Q(slug__icontains=words) | Q(name__icontains=words))
        )
        return Scope(seeds, "search", f"services matching {words!r}", more)
    if total_services <= FULL_MAP_SERVICES:
        return Scope(kind="all")
    healths = ServiceHealth.objects.filter(status__in=(ServiceStatus.DOWN, ServiceStatus.DEGRADED))
    if environment is not None:
        healths = healths.filter(environment=environment)
    seeds, more = _seeds(Service.objects.filter(pk__in=healths.values("service_id")))
    if seeds:
        return Scope(seeds, "problems", "services down or degraded", more)
    if user_id is not None:
        seeds, more = _seeds(Service.objects.filter(team__memberships__user_id=user_id))
        if seeds:
            return Scope(seeds, "mine", "your teams' services", more)
    return Scope(kind="none", label="nothing is down or degraded")


def _neighbourhood(slug: str, depth: str) -> Scope:
    """The service and what is within `depth` hops of it: depth - 1 hops along declared
    dependencies (one query a hop), then the map's own last hop along every source."""
    if depth and not (depth.isdigit() and 1 <= int(depth) <= MAX_DEPTH):
        raise ScopeError("depth", f"a whole number from 1 to {MAX_DEPTH}")
    hops = int(depth) if depth else DEFAULT_DEPTH
    origin = Service.objects.filter(slug=slug).first()
    if origin is None:
        raise ScopeError("service", f"no service {slug!r}")
    found = {origin.pk}
    frontier = {origin.pk}
    through = Service.depends_on.through.objects
    for _ in range(hops - 1):
        pairs = through.filter(
            Q(from_service_id__in=frontier) | Q(to_service_id__in=frontier)
        ).values_list("from_service_id", "to_service_id")
        frontier = {pk for pair in pairs for pk in pair} - found
        found |= frontier
        if not frontier or len(found) > MAX_SEEDS:
            break
    others, more = _seeds(Service.objects.filter(pk__in=found - {origin.pk}))
    seeds = [origin, *others[: MAX_SEEDS - 1]]
    label = f"{origin.slug} and what is within {hops} hop{'s' if hops > 1 else ''} of it"
    return Scope(seeds, "service", label, more or len(others) >= MAX_SEEDS)
