"""The health overview's queries: counts per state and one page of tiles, worst first.

Both are done by the database for the whole scope (an environment, optionally one team's
services or a text search), so the page costs the same few queries at any fleet size and
only the services shown are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Count, F, FilteredRelation, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce

from catalog.models import Environment, Service, Team
from health.choices import ServiceStatus
from health.models import ServiceHealth

# A service with the overview's annotations: `status`, `rank` and the tile's fields. (The
# typing plugin checks lookups against model fields only, so annotated querysets are Any.)
Ranked = Any

# Problems first: what an on-call engineer opens the page for. A service with no verdict in
# the environment yet (no ServiceHealth row) is unknown, as its tile says.
PROBLEM_ORDER = (
    ServiceStatus.DOWN,
    ServiceStatus.DEGRADED,
    ServiceStatus.UNKNOWN,
    ServiceStatus.HEALTHY,
)
TILES_PER_PAGE = 100
# What a tile shows of the service's health row, read in the same query as the page.
TILE_FIELDS = ("id", "since", "reason", "passing", "warning", "failing", "unknown")
MAX_QUERY_LENGTH = 100


@dataclass(frozen=True)
class Scope:
    """Which services the overview counts: an environment, maybe one team, maybe a search."""

    environment: Environment
    team: Team | None = None
    q: str = ""

    @property
    def counts_id(self) -> str:
        """The counts summary's element id; live pushes target the environment's and each
        team's (a search's counts change only on reload or reconnect)."""
        base = f"health-counts-{self.environment.pk}"
        if self.q:
            return f"{base}-search"
        return f"{base}-team-{self.team.pk}" if self.team else base


def services_in(scope: Scope) -> QuerySet[Ranked]:
    """The scope's services, each annotated with `status` in the environment and its `rank`."""
    services = Service.objects.annotate(
        health_here=FilteredRelation(
            "healths", condition=Q(healths__environment=scope.environment)
        ),
        status=Coalesce(F("health_here__status"), Value(ServiceStatus.UNKNOWN)),
        rank=Case(
            *(When(status=status, then=Value(n)) for n, status in enumerate(PROBLEM_ORDER)),
            default=Value(PROBLEM_ORDER.index(ServiceStatus.UNKNOWN)),
        ),
    )
    if scope.team is not None:
        services = services.filter(team=scope.team)
    if scope.q:
        services = services.filter(Q(slug__icontains=scope.q) | Q(name__icontains=scope.q))
    return services


def state_counts(scope: Scope) -> dict[str, Any]:
    """Services per state over the whole scope (one GROUP BY), worst state first."""
    found = dict(services_in(scope).order_by().values_list("status").annotate(n=Count("pk")))
    counts = [(status.value, found.get(status, 0)) for status in PROBLEM_ORDER]
    return {"scope": scope, "counts": counts, "total": sum(found.values())}


def worst_first(scope: Scope, state: str = "") -> QuerySet[Ranked]:
    """The scope's services in overview order, for a paginator to slice: problems first,
    then team, then service. Each carries its tile's fields (see `tiles_by_team`)."""
    services = (
        services_in(scope)
        .select_related("team")
        .annotate(**{f"health_{field}": F(f"health_here__{field}") for field in TILE_FIELDS})
    )
    if state:
        services = services.filter(status=state)
    ordered: QuerySet[Any] = services.order_by("rank", "team__slug", "slug")
    return ordered


def tiles_by_team(
    services: list[Ranked], environment: Environment
) -> list[tuple[Team, list[ServiceHealth]]]:
    """The page's tiles grouped by team, teams in order of their first (worst) tile.

    `services` come from `worst_first`: a service without a verdict in the environment
    has no health row, and its tile shows an unknown health with no instances.
    """
    grid: dict[Team, list[ServiceHealth]] = {}
    for service in services:
        found = {f: getattr(service, f"health_{f}") for f in TILE_FIELDS}
        health = ServiceHealth(
            service=service,
            environment=environment,
            status=service.status,
            **{f: value for f, value in found.items() if value is not None},
        )
        grid.setdefault(service.team, []).append(health)
    return list(grid.items())
