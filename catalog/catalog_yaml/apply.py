"""Importing: check every document, plan, authorise, then write it all in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError, RestrictedError

from catalog.catalog_yaml.authorize import authorize
from catalog.catalog_yaml.entities import read_entities
from catalog.catalog_yaml.extensions import (
    EXTRA_KINDS,
    Context,
    ExtraInvalid,
    ExtraKind,
    Planned,
    extra_kind_of,
)
from catalog.catalog_yaml.kinds import MODEL_OF, Action, Kind
from catalog.catalog_yaml.plan import Change, Planner
from catalog.catalog_yaml.problems import CatalogConflict, CatalogInvalid, Location, Problem
from catalog.catalog_yaml.reading import Document, parse
from catalog.catalog_yaml.schema import schema_problems
from catalog.catalog_yaml.snapshot import CatalogSnapshot
from catalog.catalog_yaml.sources import Source
from catalog.choices import SERVICE_EVENTS, TEAM_EVENTS, CatalogEvent
from catalog.models import Membership, Service, Team
from catalog.permissions import Access
from controlplane.events import ResourceEvents, publish

# Teams and services get an event each (up to MAX_ENTITY_EVENTS); the rest only the summary.
ENTITY_EVENTS: dict[Kind, ResourceEvents] = {Kind.TEAM: TEAM_EVENTS, Kind.SERVICE: SERVICE_EVENTS}

# Per-entity team/service events an import publishes before it only summarises: a
# first import of a large catalog should not flood the timeline or alerting.
MAX_ENTITY_EVENTS = 50
# Changes listed in the `catalog.imported` payload (the counts are always complete).
MAX_PAYLOAD_CHANGES = 100
# Serialises imports (any constant shared by all importers; "SBXCATLG" in hex).
IMPORT_LOCK_ID = 0x534258434154_4C47


@dataclass
class ImportResult:
    """What an import did (or, in a dry run, would do)."""

    changes: list[Change]
    warnings: list[Problem]
    dry_run: bool

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def counts(self) -> dict[str, int]:
        return {str(action): self.count(action) for action in Action}

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.action != Action.UNCHANGED]

    def summary(self) -> str:
        counts = self.counts
        return ", ".join(f"{counts[a]} {a}" for a in Action)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            **self.counts,
            "changes": [c.as_dict() for c in self.changed],
            "warnings": [str(w) for w in self.warnings],
        }


def import_catalog(
    sources: Sequence[Source],
    *,
    prune: bool = False,
    dry_run: bool = False,
    actor: Any = None,
    access: Access | None = None,
    resolve_secrets: bool = False,
) -> ImportResult:
    """Check every document, then apply all of them in one transaction, or nothing.

    Raises CatalogInvalid listing every problem, CatalogForbidden when `access` is given
    and lacks write access to a team the import changes, or CatalogConflict when a
    concurrent write got in the way. `resolve_secrets` lets documents of registered kinds
    read secret references (environment variables, files): only for the operator's own
    `manage.py catalog import`, never for files posted to the API.
    """
    parsed, problems, complete = parse(sources)
    documents = [d for d in parsed if extra_kind_of(d.body) is None]
    extras = [d for d in parsed if extra_kind_of(d.body) is not None]
    warnings: list[Problem] = []
    entities = read_entities(documents, problems, warnings)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK_ID])
            planner = Planner(
                entities, CatalogSnapshot.load(lock=True), prune=prune, all_read=complete
            )
            changes = planner.plan()
            problems += planner.problems
            context = Context(planner.will_exist, resolve_secrets, prune)
            changes += _plan_extras(extras, context, problems)
            if problems:
                raise CatalogInvalid(_in_file_order(problems, sources))
            if access is not None:
                authorize(changes, access)
            result = ImportResult(changes, warnings + planner.warnings, dry_run)
            if not dry_run:
                Applier(planner.catalog, actor).apply(result, sources)
    except IntegrityError as exc:
        # Someone changed the catalog through the API between our read and our write.
        raise CatalogConflict(
            f"the catalog changed while importing; nothing was written, try again ({exc})"
        ) from exc
    return result


def _plan_extras(
    documents: list[Document], context: Context, problems: list[Problem]
) -> list[Change]:
    """Check each document of a registered kind and plan its change; problems go to `problems`."""
    changes: list[Change] = []
    seen: dict[tuple[str, str], Location] = {}
    in_files = frozenset(
        (extra.name, _extra_label(extra, d.body))
        for d in documents
        if (extra := extra_kind_of(d.body)) is not None
    )
    context = replace(context, declared=in_files)
    for document in documents:
        extra = extra_kind_of(document.body)
        assert extra is not None
        body = document.body
        named = _extra_label(extra, body)
        where = document.where
        if named:
            where = Location(where.file, where.index, extra.name, named)
        found = schema_problems(document, body, where)
        if found:
            problems += found
            continue
        earlier = seen.setdefault((extra.name, named), where)
        if earlier is not where:
            problems.append(
                document.problem(where, "metadata", f"{extra.name}/{named} is also at {earlier}")
            )
            continue
        try:
            planned = extra.validator(body, context)
        except ExtraInvalid as exc:
            problems += [document.problem(where, k, v) for k, v in exc.fields.items()]
            continue
        changes.append(_extra_change(extra, planned))
    if context.prune:
        for extra in EXTRA_KINDS.values():
            if extra.pruner is None:
                continue
            declared = {name for kind, name in seen if kind == extra.name}
            changes += [_extra_change(extra, p) for p in extra.pruner(declared, context)]
    return changes


def _extra_change(extra: ExtraKind, planned: Planned) -> Change:
    change = Change(
        cast(Kind, extra.name),
        planned.name,
        planned.action,
        fields=planned.fields,
        teams=planned.teams if planned.action != Action.UNCHANGED else [],
        # A config of a service this import creates: creating it already needs its team.
        needs_admin=planned.needs_admin and planned.action != Action.UNCHANGED,
        service=planned.service,
    )
    change.extra = (extra, planned)
    return change


def _extra_label(extra: ExtraKind, body: Any) -> str:
    try:
        return extra.label(body)
    except (KeyError, TypeError, AttributeError):
        return ""


def _in_file_order(problems: list[Problem], sources: Sequence[Source]) -> list[Problem]:
    """Problems by file and document, as a reader goes through them (--prune ones last)."""
    position = {source.name: n for n, source in enumerate(sources)}
    return sorted(
        problems, key=lambda p: (position.get(p.where.file, len(position)), p.where.index)
    )


class Applier:
    """Writes a checked plan: columns, then memberships and dependencies, then deletions."""

    def __init__(self, catalog: CatalogSnapshot, actor: Any) -> None:
        self.catalog = catalog
        self.actor = actor
        self.events_left = MAX_ENTITY_EVENTS

    def apply(self, result: ImportResult, sources: Sequence[Source]) -> None:
        order = list(Kind)
        writes = sorted(
            (
                c
                for c in result.changes
                if c.action in (Action.CREATED, Action.UPDATED) and c.extra is None
            ),
            key=lambda c: order.index(c.kind),
        )
        for change in writes:
            self._save(change)
        for change in writes:
            if change.kind == Kind.TEAM:
                self._members(change)
        self._dependencies(
            [
                c
                for c in writes
                if c.kind == Kind.SERVICE
                and (c.action == Action.CREATED or "spec.dependsOn" in c.fields)
            ]
        )
        for change in writes:
            self._entity_event(change)
        # Registered kinds (RuntimeConfig, CheckSpec) once the services and environments they
        # name exist; their pruned objects too, before the catalog's own deletions.
        # In the order the kinds were registered (a route after the channel it names),
        # deletions first and in the reverse order (a route before its channel).
        registered = list(EXTRA_KINDS)
        extras = [c for c in result.changes if c.extra and c.action != Action.UNCHANGED]
        deletions = [c for c in extras if c.action == Action.DELETED]
        deletions.sort(key=lambda c: -registered.index(str(c.kind)))
        writes_after = [c for c in extras if c.action != Action.DELETED]
        writes_after.sort(key=lambda c: registered.index(str(c.kind)))
        for change in deletions + writes_after:
            extra, planned = change.extra
            extra.applier(planned, self.actor)
        for change in result.changes:
            if change.action == Action.DELETED and change.extra is None:
                self._delete(change)
        if result.changed:
            self._summary_event(result, sources)

    def _save(self, change: Change) -> None:
        entity = change.entity
        assert entity is not None
        values = dict(entity.values)
        if entity.kind == Kind.SERVICE:
            values["team"] = self.catalog.teams[entity.owner]
        obj = change.obj
        if obj is None:
            model = MODEL_OF[entity.kind]
            obj = model.objects.create(slug=entity.name, **values)  # type: ignore[attr-defined]
            self.catalog.existing(entity.kind)[entity.name] = obj
            change.obj = obj
        else:
            for name, value in values.items():
                setattr(obj, name, value)
            obj.save(update_fields=list(values))

    def _members(self, change: Change) -> None:
        team = cast(Team, change.obj)
        wanted = change.entity.members if change.entity else None
        if wanted is None or wanted == self.catalog.members.get(team.pk, {}):
            return
        team.memberships.exclude(user__username__in=wanted).delete()
        users = {u.get_username(): u for u in get_user_model().objects.filter(username__in=wanted)}
        current = {m.user.get_username(): m for m in team.memberships.select_related("user")}
        for username, role in wanted.items():
            membership = current.get(username)
            if membership is None:
                Membership.objects.create(team=team, user=users[username], role=role)
            elif membership.role != role:
                membership.role = role
                membership.save(update_fields=["role"])

    def _dependencies(self, changes: list[Change]) -> None:
        """Replace the dependency edges of these services, in four queries however many."""
        declared = [(cast(Service, c.obj).pk, c.entity) for c in changes if c.entity is not None]
        if not declared:
            return
        # Bulk rather than .set() per service: 2,000 services took 20 s that way.
        service_links = Service.depends_on.through
        external_links = Service.external_dependencies.through
        ids = [service_id for service_id, _ in declared]
        service_links.objects.filter(from_service_id__in=ids).delete()
        external_links.objects.filter(service_id__in=ids).delete()
        service_links.objects.bulk_create(
            service_links(from_service_id=service_id, to_service_id=self.catalog.services[s].pk)
            for service_id, entity in declared
            for s, _ in entity.services
        )
        external_links.objects.bulk_create(
            external_links(
                service_id=service_id, externaldependency_id=self.catalog.externals[x].pk
            )
            for service_id, entity in declared
            for x, _ in entity.externals
        )

    def _delete(self, change: Change) -> None:
        obj = change.obj
        assert obj is not None
        self._entity_event(change)
        try:
            obj.delete()
        except (ProtectedError, RestrictedError) as exc:
            blockers = sorted({str(o._meta.verbose_name) for o in exc.args[1]})
            raise CatalogInvalid(
                [
                    Problem(
                        Location("--prune"),
                        change.label,
                        "cannot be deleted: still used by " + ", ".join(blockers),
                    )
                ]
            ) from exc

    def _entity_event(self, change: Change) -> None:
        events = ENTITY_EVENTS.get(change.kind)
        if events is None or change.action == Action.UNCHANGED or self.events_left <= 0:
            return
        self.events_left -= 1
        action = {
            Action.CREATED: events.created,
            Action.UPDATED: events.updated,
            Action.DELETED: events.deleted,
        }[change.action]
        publish(
            action,
            actor=self.actor,
            subject=change.obj,
            message=f"{change.label} {change.action} by catalog import",
            payload={"fields": change.fields, "source": "catalog import"},
        )

    def _summary_event(self, result: ImportResult, sources: Sequence[Source]) -> None:
        changed = result.changed
        publish(
            CatalogEvent.IMPORTED,
            actor=self.actor,
            message=f"catalog import: {result.summary()}",
            payload={
                **result.counts,
                "sources": [s.name for s in sources][:20],
                "changes": [c.as_dict() for c in changed[:MAX_PAYLOAD_CHANGES]],
                "truncated": len(changed) > MAX_PAYLOAD_CHANGES,
            },
        )
