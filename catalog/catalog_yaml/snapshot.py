"""The catalog as it is in the database, read in a few queries, for planning and export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.catalog_yaml.kinds import Kind
from catalog.models import Environment, ExternalDependency, Membership, Service, Team


@dataclass
class CatalogSnapshot:
    """The catalog as it is now, keyed by slug, with rows locked against concurrent edits."""

    teams: dict[str, Team]
    environments: dict[str, Environment]
    externals: dict[str, ExternalDependency]
    services: dict[str, Service]
    members: dict[int, dict[str, str]]  # team id -> username -> role
    service_deps: dict[int, set[str]]
    external_deps: dict[int, set[str]]

    @classmethod
    def load(cls, *, lock: bool) -> CatalogSnapshot:
        """Read everything in a few queries; `lock` holds the rows until the transaction ends."""

        def rows(model: type[Any], *related: str) -> dict[str, Any]:
            queryset = model.objects.select_related(*related)
            if lock:
                # NO KEY UPDATE: instances may still register against these rows meanwhile.
                queryset = queryset.select_for_update(no_key=True, of=("self",))
            return {o.slug: o for o in queryset}

        teams = rows(Team)
        services = rows(Service, "team")
        by_id = {s.pk: s.slug for s in services.values()}
        members: dict[int, dict[str, str]] = {}
        for team_id, username, role in Membership.objects.values_list(
            "team_id", "user__username", "role"
        ):
            members.setdefault(team_id, {})[username] = role
        service_deps: dict[int, set[str]] = {}
        for from_id, to_id in Service.depends_on.through.objects.values_list(
            "from_service_id", "to_service_id"
        ):
            service_deps.setdefault(from_id, set()).add(by_id[to_id])
        external_deps: dict[int, set[str]] = {}
        for service_id, slug in Service.external_dependencies.through.objects.values_list(
            "service_id", "externaldependency__slug"
        ):
            external_deps.setdefault(service_id, set()).add(slug)
        return cls(
            teams=teams,
            environments=rows(Environment),
            externals=rows(ExternalDependency),
            services=services,
            members=members,
            service_deps=service_deps,
            external_deps=external_deps,
        )

    def existing(self, kind: Kind) -> dict[str, Any]:
        by_kind: dict[Kind, dict[str, Any]] = {
            Kind.TEAM: self.teams,
            Kind.ENVIRONMENT: self.environments,
            Kind.EXTERNAL: self.externals,
            Kind.SERVICE: self.services,
        }
        return by_kind[kind]
