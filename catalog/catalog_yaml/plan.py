"""Planning an import: compare the entities with the catalog, check references, list changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models

from catalog.catalog_yaml.entities import Entity
from catalog.catalog_yaml.graph import cycles, loop_through
from catalog.catalog_yaml.kinds import ATTRS, Action, Kind
from catalog.catalog_yaml.problems import Location, Problem
from catalog.catalog_yaml.snapshot import CatalogSnapshot
from catalog.choices import Lifecycle
from catalog.models import Instance, Service, Team


@dataclass
class Change:
    """One entity an import creates, updates, leaves alone or deletes."""

    kind: Kind
    name: str
    action: Action
    fields: list[str] = field(default_factory=list)  # YAML paths that change
    teams: list[Team] = field(default_factory=list)  # existing teams the caller must write to
    needs_admin: bool = False
    service: Service | None = None
    entity: Entity | None = None
    obj: models.Model | None = None
    # A registered kind's change: (ExtraKind, Planned); `kind` is then its name, not a Kind.
    extra: Any = None

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "name": self.name,
            "action": str(self.action),
            "fields": self.fields,
        }


class Planner:
    """Compares the entities with the catalog: problems, warnings and the changes to make."""

    def __init__(
        self, entities: list[Entity], catalog: CatalogSnapshot, *, prune: bool, all_read: bool
    ) -> None:
        self.entities = entities
        self.catalog = catalog
        self.prune = prune
        self.all_read = all_read
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.declared: dict[Kind, dict[str, Entity]] = {k: {} for k in Kind}
        for entity in entities:
            self.declared[entity.kind][entity.name] = entity

    def plan(self) -> list[Change]:
        self._check_references()
        changes = [self._change(entity) for entity in self.entities]
        if self.prune:
            changes.extend(self._deletions())
        if not self.problems:
            self._warn_about_cycles()
        return changes

    def will_exist(self, kind: Kind, slug: str) -> bool:
        """Whether `kind/slug` exists once this import is applied."""
        return self._will_exist(kind, slug)

    def _will_exist(self, kind: Kind, slug: str) -> bool:
        if slug in self.declared[kind]:
            return True
        return not self.prune and slug in self.catalog.existing(kind)

    def _missing(self, kind: Kind, slug: str) -> str:
        if self.prune and slug in self.catalog.existing(kind):
            return f"{kind}/{slug} is not in the files, so --prune would delete it; add it"
        # A file that could not be read may hold it: say so rather than stay silent.
        unread = "" if self.all_read else " (or it is in a file that could not be read)"
        return f"{kind}/{slug} is neither in the files nor in the catalog{unread}"

    def _check_references(self) -> None:
        users = _existing_usernames(self.entities)
        for entity in self.entities:
            if entity.kind == Kind.SERVICE:
                if entity.owner and not self._will_exist(Kind.TEAM, entity.owner):
                    self._fail(entity, "spec.owner", self._missing(Kind.TEAM, entity.owner))
                for slug, path in entity.services:
                    if not self._will_exist(Kind.SERVICE, slug):
                        self._fail(entity, path, self._missing(Kind.SERVICE, slug))
                for slug, path in entity.externals:
                    if not self._will_exist(Kind.EXTERNAL, slug):
                        self._fail(entity, path, self._missing(Kind.EXTERNAL, slug))
            for username in (entity.members or {}).keys() - users:
                self.problems.append(
                    entity.problem(
                        f"spec.members.{username}",
                        f"no user {username!r}; people sign up or are created by an admin first",
                        at_key=True,
                    )
                )

    def _fail(self, entity: Entity, path: str, message: str) -> None:
        self.problems.append(entity.problem(path, message))

    def _change(self, entity: Entity) -> Change:
        obj = self.catalog.existing(entity.kind).get(entity.name)
        if obj is None:
            return self._creation(entity)
        fields = [
            a.path
            for a in ATTRS[entity.kind]
            if a.field in entity.values and getattr(obj, a.field) != entity.values[a.field]
        ]
        teams: list[Team] = []
        if entity.kind == Kind.TEAM:
            teams = [obj]
            current = self.catalog.members.get(obj.pk, {})
            if entity.members is not None and entity.members != current:
                fields.append("spec.members")
        elif entity.kind == Kind.SERVICE:
            teams = [obj.team]
            if obj.team.slug != entity.owner:
                fields.append("spec.owner")
                new_owner = self.catalog.teams.get(entity.owner)
                teams += [new_owner] if new_owner else []
            if self._dependencies_differ(obj, entity):
                fields.append("spec.dependsOn")
        action = Action.UPDATED if fields else Action.UNCHANGED
        return Change(
            entity.kind,
            entity.name,
            action,
            fields=fields,
            teams=teams if fields else [],
            needs_admin=bool(fields) and entity.kind in (Kind.ENVIRONMENT, Kind.EXTERNAL),
            service=obj if isinstance(obj, Service) else None,
            entity=entity,
            obj=obj,
        )

    def _dependencies_differ(self, obj: Service, entity: Entity) -> bool:
        services = {slug for slug, _ in entity.services}
        externals = {slug for slug, _ in entity.externals}
        return services != self.catalog.service_deps.get(
            obj.pk, set()
        ) or externals != self.catalog.external_deps.get(obj.pk, set())

    def _creation(self, entity: Entity) -> Change:
        owner = self.catalog.teams.get(entity.owner) if entity.kind == Kind.SERVICE else None
        return Change(
            entity.kind,
            entity.name,
            Action.CREATED,
            teams=[owner] if owner else [],
            # A service for a team created in this very import needs the admin who creates it.
            needs_admin=owner is None,
            entity=entity,
        )

    def _deletions(self) -> list[Change]:
        changes: list[Change] = []
        for kind in (Kind.SERVICE, Kind.TEAM, Kind.ENVIRONMENT, Kind.EXTERNAL):
            doomed = sorted(set(self.catalog.existing(kind)) - set(self.declared[kind]))
            for slug in doomed:
                obj = self.catalog.existing(kind)[slug]
                self._refuse_if_running(kind, obj)
                changes.append(
                    Change(
                        kind,
                        slug,
                        Action.DELETED,
                        teams=[obj.team] if kind == Kind.SERVICE else [],
                        needs_admin=kind != Kind.SERVICE,
                        service=obj if kind == Kind.SERVICE else None,
                        obj=obj,
                    )
                )
        return changes

    def _refuse_if_running(self, kind: Kind, obj: Any) -> None:
        if kind not in (Kind.SERVICE, Kind.ENVIRONMENT):
            return
        running = Instance.objects.exclude(lifecycle=Lifecycle.DEREGISTERED)
        if kind == Kind.SERVICE:
            count = running.filter(service=obj).count()
        else:
            count = running.filter(environment=obj).count()
        if count:
            self.problems.append(
                Problem(
                    Location("--prune"),
                    f"{kind}/{obj.slug}",
                    f"not in the files, but {count} instance(s) still run there; "
                    "add it back to the files, or deregister its instances before pruning",
                )
            )

    def _warn_about_cycles(self) -> None:
        graph: dict[str, set[str]] = {}
        for slug, service in self.catalog.services.items():
            if self._will_exist(Kind.SERVICE, slug):
                graph[slug] = set(self.catalog.service_deps.get(service.pk, set()))
        for entity in self.declared[Kind.SERVICE].values():
            graph[entity.name] = {slug for slug, _ in entity.services}
        declared = self.declared[Kind.SERVICE]
        for component in cycles(graph):
            # Only loops through this import's services: others are not its business.
            first = next((s for s in component if s in declared), None)
            if first is None:
                continue
            loop = loop_through(first, graph, set(component))
            others = sorted(set(component) - set(loop))
            self.warnings.append(
                declared[first].problem(
                    "spec.dependsOn",
                    "dependency cycle (allowed, but check it is real): "
                    + " -> ".join([*loop, first])
                    + (f"; also in the same loop: {', '.join(others)}" if others else ""),
                )
            )


def _existing_usernames(entities: Iterable[Entity]) -> set[str]:
    wanted = {u for e in entities for u in (e.members or {})}
    if not wanted:
        return set()
    user_model = get_user_model()
    return set(
        user_model.objects.filter(**{f"{user_model.USERNAME_FIELD}__in": wanted}).values_list(
            user_model.USERNAME_FIELD, flat=True
        )
    )
