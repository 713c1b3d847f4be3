"""Catalog as code: read, check, plan and apply `signalbox.dev/v1` YAML, and write it back out.

An import reads every document first and reports every problem at once (file, document,
entity and field); only a clean set of files is applied, in one transaction. See
docs/catalog.md for the format.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import ProtectedError, RestrictedError

from catalog.choices import Lifecycle, Role, Scope, Tier
from catalog.models import Environment, ExternalDependency, Instance, Membership, Service, Team
from catalog.permissions import Access
from controlplane.events import publish

API_VERSION = "signalbox.dev/v1"
YAML_SUFFIXES = (".yaml", ".yml")
SERVICE_REF = "service:"
EXTERNAL_REF = "external:"
# Per-entity team/service events an import publishes before it only summarises: a
# first import of a large catalog should not flood the timeline or alerting.
MAX_ENTITY_EVENTS = 50
# Changes listed in the `catalog.imported` payload (the counts are always complete).
MAX_PAYLOAD_CHANGES = 100
# Serialises imports (any constant shared by all importers; "SBXCATLG" in hex).
IMPORT_LOCK_ID = 0x534258434154_4C47


class Kind(enum.StrEnum):
    """The kinds of document a catalog file may hold, in the order they are applied."""

    TEAM = "Team"
    ENVIRONMENT = "Environment"
    EXTERNAL = "ExternalDependency"
    SERVICE = "Service"


class Action(enum.StrEnum):
    """What an import does (or would do) to one entity."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


MODEL_OF: dict[Kind, type[models.Model]] = {
    Kind.TEAM: Team,
    Kind.ENVIRONMENT: Environment,
    Kind.EXTERNAL: ExternalDependency,
    Kind.SERVICE: Service,
}


@dataclass(frozen=True)
class Attr:
    """One plain column of a kind: where it sits in YAML, its model field and YAML type."""

    path: str  # "metadata.title", "spec.tier"
    field: str  # the model field
    type: type
    default: Any = ""
    omit_when_default: bool = True  # on export

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split(".", 1)[1]


TITLE = Attr("metadata.title", "name", str, default=None, omit_when_default=False)
DESCRIPTION = Attr("metadata.description", "description", str)
ATTRS: dict[Kind, tuple[Attr, ...]] = {
    Kind.TEAM: (TITLE, DESCRIPTION, Attr("spec.slackChannel", "slack_channel", str)),
    Kind.ENVIRONMENT: (
        TITLE,
        Attr("spec.order", "order", int, default=0, omit_when_default=False),
        Attr("spec.production", "is_production", bool, default=False, omit_when_default=False),
    ),
    Kind.EXTERNAL: (TITLE, DESCRIPTION, Attr("spec.statusPage", "status_page_url", str)),
    Kind.SERVICE: (
        TITLE,
        DESCRIPTION,
        Attr("spec.tier", "tier", int, default=int(Tier.STANDARD), omit_when_default=False),
        Attr("spec.repository", "repository_url", str),
        Attr("spec.runbook", "runbook_url", str),
    ),
}
# Keys handled by hand rather than through ATTRS.
EXTRA_SPEC_KEYS: dict[Kind, tuple[str, ...]] = {
    Kind.TEAM: ("members",),
    Kind.ENVIRONMENT: (),
    Kind.EXTERNAL: (),
    Kind.SERVICE: ("owner", "dependsOn"),
}
TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")


# --- problems -------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """A document: its file, its 1-based position in the file, and the entity once known."""

    file: str
    index: int = 0  # 0: the file as a whole
    kind: str = ""
    name: str = ""

    def __str__(self) -> str:
        text = f"{self.file}#{self.index}" if self.index else self.file
        return f"{text} {self.kind}/{self.name}" if self.kind and self.name else text


@dataclass(frozen=True)
class Problem:
    """Something wrong with the files, named by location and field."""

    where: Location
    field: str
    message: str

    @property
    def key(self) -> str:
        """`file.yaml#2 Service/checkout: spec.owner`, the key in the API's `fields`."""
        return f"{self.where}: {self.field}" if self.field else str(self.where)

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class CatalogInvalid(Exception):
    """The files have problems; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s); nothing was imported")

    def as_fields(self) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = {}
        for problem in self.problems:
            fields.setdefault(problem.key, []).append(problem.message)
        return fields


class CatalogForbidden(Exception):
    """The caller may not make some of the changes an import would make."""


class CatalogConflict(Exception):
    """The catalog changed under the import (a concurrent API write); nothing was written."""


# --- reading files --------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The text of one catalog file and the name its problems are reported under.

    `error` says why a named path could not be read; the import reports it with the
    problems of the files that could.
    """

    name: str
    text: str = ""
    error: str = ""


def sources_from_paths(paths: Iterable[str | Path]) -> list[Source]:
    """Every *.yaml/*.yml file named or found (recursively, sorted) under the paths."""
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
            if not files:
                sources.append(Source(str(path), error="no *.yaml or *.yml files here"))
        elif path.is_file():
            files = [path]
        else:
            sources.append(Source(str(path), error="no such file or directory"))
            continue
        for file in files:
            try:
                sources.append(Source(str(file), file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                sources.append(Source(str(file), error=f"cannot be read: {exc}"))
    return sources


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    # libyaml's parser when PyYAML has it: ten times faster on a large catalog.
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CatalogLoader(_SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may legitimately be overridden
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


@dataclass
class _Document:
    where: Location
    body: Any


def _parse(sources: Sequence[Source]) -> tuple[list[_Document], list[Problem], bool]:
    """All documents of all files; and whether every file parsed to its end."""
    documents: list[_Document] = []
    problems: list[Problem] = []
    complete = True
    for source in sources:
        if source.error:
            complete = False
            problems.append(Problem(Location(source.name), "", source.error))
            continue
        index = 0
        try:
            for body in yaml.load_all(source.text, Loader=_CatalogLoader):
                index += 1
                if body is not None:  # an empty document, such as after a trailing ---
                    documents.append(_Document(Location(source.name, index), body))
        except RecursionError:
            complete = False
            problems.append(Problem(Location(source.name, index + 1), "", "nested too deeply"))
        except yaml.YAMLError as exc:
            complete = False
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            reason = getattr(exc, "problem", None) or str(exc)
            problems.append(
                Problem(Location(source.name, index + 1), "", f"invalid YAML{at}: {reason}")
            )
    return documents, problems, complete


# --- checking one document ------------------------------------------------------------


@dataclass
class Entity:
    """One valid document: a kind, a name and the values it declares."""

    kind: Kind
    name: str
    where: Location
    values: dict[str, Any]  # model field -> value, for the ATTRS columns
    owner: str = ""  # Service: the owning team's slug
    services: list[tuple[str, str]] = field(default_factory=list)  # (slug, YAML path)
    externals: list[tuple[str, str]] = field(default_factory=list)
    members: dict[str, str] | None = None  # Team: username -> role, None when not declared

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"


class _DocumentReader:
    """Checks one document, collecting every problem instead of stopping at the first."""

    def __init__(self, document: _Document) -> None:
        self.where = document.where
        self.body = document.body
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.where, path, message))

    def read(self) -> Entity | None:
        body = self.body
        if not isinstance(body, dict):
            self.fail("", "a document must be a mapping with apiVersion, kind, metadata and spec")
            return None
        self._name_location(body)
        nul_paths = _paths_with_nul(body)
        for path in nul_paths:
            self.fail(path, "contains a NUL character, which the database cannot store")
        if nul_paths:
            return None
        self._unknown_keys(body, "", TOP_KEYS)
        if body.get("apiVersion") != API_VERSION:
            self.fail("apiVersion", f"must be {API_VERSION}")
        kind = self._kind(body.get("kind"))
        metadata = self._section(body, "metadata", required=True)
        name = self._name(kind, metadata)
        if kind is None or metadata is None:
            return None
        spec = self._section(body, "spec", required=kind == Kind.SERVICE) or {}
        entity = Entity(kind, name or "", self.where, values={})
        self._metadata_keys(kind, metadata)
        self._unknown_keys(
            spec,
            "spec",
            [a.key for a in ATTRS[kind] if a.section == "spec"] + list(EXTRA_SPEC_KEYS[kind]),
        )
        sections = {"metadata": metadata, "spec": spec}
        for attr in ATTRS[kind]:
            self._attr(entity, attr, sections[attr.section])
        if kind == Kind.TEAM:
            entity.members = self._members(spec)
        elif kind == Kind.SERVICE:
            self._service(entity, spec)
        # Returned even with problems, so its references are checked too; the import
        # stops before applying anything when there is any problem.
        return entity if name else None

    def _name_location(self, body: dict[Any, Any]) -> None:
        """Name the entity in every problem, as soon as its kind and name can be read."""
        metadata = body.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if body.get("kind") in list(Kind) and isinstance(name, str) and name:
            self.where = Location(self.where.file, self.where.index, body["kind"], name)

    def _kind(self, value: Any) -> Kind | None:
        if value is None:
            self.fail("kind", "missing; use one of " + ", ".join(Kind))
            return None
        try:
            if not isinstance(value, str):
                raise ValueError  # Enum's own message would repr the value, however huge
            return Kind(value)
        except ValueError:
            self.fail("kind", f"unknown kind {_show(value)}; use one of " + ", ".join(Kind))
            return None

    def _section(self, body: dict[Any, Any], key: str, *, required: bool) -> dict[Any, Any] | None:
        value = body.get(key)
        if value is None:
            if required:
                self.fail(key, "missing")
            return None
        if not isinstance(value, dict):
            self.fail(key, "must be a mapping")
            return None
        return value

    def _name(self, kind: Kind | None, metadata: dict[Any, Any] | None) -> str | None:
        if metadata is None:
            return None
        name = metadata.get("name")
        if name is None:
            self.fail("metadata.name", "missing")
            return None
        if not isinstance(name, str):
            self.fail("metadata.name", "must be a string")
            return None
        model = MODEL_OF[kind] if kind else Team
        return name if self._clean(model, "slug", name, "metadata.name") else None

    def _metadata_keys(self, kind: Kind, metadata: dict[Any, Any]) -> None:
        allowed = ["name", "annotations"] + [a.key for a in ATTRS[kind] if a.section == "metadata"]
        self._unknown_keys(metadata, "metadata", allowed)
        annotations = metadata.get("annotations")
        if annotations is None:
            return
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            self.fail("metadata.annotations", "must map strings to strings")
            return
        self.warnings.append(
            Problem(
                self.where,
                "metadata.annotations",
                "accepted for Backstage compatibility but not stored; export leaves them out",
            )
        )

    def _unknown_keys(self, mapping: dict[Any, Any], path: str, allowed: Sequence[str]) -> None:
        for key in mapping:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, "unknown field; allowed here: " + ", ".join(allowed))

    def _attr(self, entity: Entity, attr: Attr, section: dict[Any, Any]) -> None:
        value = section.get(attr.key)
        if value is None:
            value = (entity.name or "?") if attr is TITLE else attr.default
        elif type(value) is not attr.type:  # bool is an int in Python; YAML's are not
            self.fail(attr.path, f"must be {_TYPE_NAMES[attr.type]}")
            return
        if attr.field == "tier" and value not in Tier.values:
            self.fail(
                attr.path, "must be one of " + ", ".join(map(str, Tier.values)) + " (1 is critical)"
            )
            return
        model = MODEL_OF[entity.kind]
        if self._clean(model, attr.field, value, attr.path):
            entity.values[attr.field] = value

    def _clean(self, model: type[models.Model], name: str, value: Any, path: str) -> bool:
        """Apply the model field's own validators (length, URL, range, slug)."""
        model_field = cast("models.Field[Any, Any]", model._meta.get_field(name))
        try:
            model_field.clean(value, None)
        except ValidationError as exc:
            self.fail(path, " ".join(exc.messages))
            return False
        return True

    def _members(self, spec: dict[Any, Any]) -> dict[str, str] | None:
        members = spec.get("members")
        if members is None:
            return None
        if not isinstance(members, dict):
            self.fail("spec.members", "must map usernames to roles (viewer, deployer, owner)")
            return None
        result: dict[str, str] = {}
        for username, role in members.items():
            path = f"spec.members.{username}"
            if not isinstance(username, str):
                self.fail(path, "a username must be a string")
            elif role not in Role.values:
                self.fail(path, f"unknown role {_show(role)}; use one of " + ", ".join(Role.values))
            else:
                result[username] = role
        if result and Role.OWNER not in result.values():
            self.warnings.append(
                Problem(self.where, "spec.members", "no owner: only platform admins can change it")
            )
        return result

    def _service(self, entity: Entity, spec: dict[Any, Any]) -> None:
        owner = spec.get("owner")
        if owner is None:
            self.fail("spec.owner", "missing; name the owning team's metadata.name")
        elif not isinstance(owner, str):
            self.fail("spec.owner", "must be a team name (a string)")
        else:
            entity.owner = owner
        depends_on = spec.get("dependsOn", [])
        if not isinstance(depends_on, list):
            self.fail(
                "spec.dependsOn", "must be a list such as [service:checkout, external:stripe]"
            )
            return
        seen: set[str] = set()
        for position, ref in enumerate(depends_on):
            self._dependency(entity, ref, f"spec.dependsOn[{position}]", seen)

    def _dependency(self, entity: Entity, ref: Any, path: str, seen: set[str]) -> None:
        if not isinstance(ref, str) or not ref.startswith((SERVICE_REF, EXTERNAL_REF)):
            self.fail(path, "must be service:NAME or external:NAME")
            return
        if ref in seen:
            self.fail(path, f"{ref} is listed twice")
            return
        seen.add(ref)
        prefix, _, slug = ref.partition(":")
        if prefix + ":" == SERVICE_REF:
            if slug == entity.name:
                self.fail(path, "a service cannot depend on itself")
            else:
                entity.services.append((slug, path))
        else:
            entity.externals.append((slug, path))


def _show(value: Any) -> str:
    """A bad value for a message: scalars as written, never a whole (possibly huge) tree."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:100]


def _paths_with_nul(body: Any) -> list[str]:
    """Paths of every key or string holding a NUL (iteratively: YAML aliases can share
    one list many times over, so each container is visited once)."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                found.append(path.replace("\x00", "\\0"))
            continue
        if not isinstance(value, (dict, list)) or id(value) in seen:
            continue
        seen.add(id(value))
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            sub = (
                f"{path}[{key}]"
                if isinstance(value, list)
                else (f"{path}.{key}" if path else str(key))
            )
            if isinstance(key, str) and "\x00" in key:
                found.append(sub.replace("\x00", "\\0"))
            stack.append((sub, item))
    return sorted(found)


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _read_entities(
    documents: Sequence[_Document], problems: list[Problem], warnings: list[Problem]
) -> list[Entity]:
    entities: list[Entity] = []
    first_seen: dict[tuple[Kind, str], Location] = {}
    for document in documents:
        reader = _DocumentReader(document)
        entity = reader.read()
        problems.extend(reader.problems)
        warnings.extend(reader.warnings)
        if entity is None:
            continue
        earlier = first_seen.setdefault((entity.kind, entity.name), entity.where)
        if earlier is not entity.where:
            problems.append(
                Problem(
                    entity.where, "metadata.name", f"{entity.label} is also defined at {earlier}"
                )
            )
            continue
        entities.append(entity)
    return entities


# --- planning against the database ----------------------------------------------------


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


@dataclass
class _Catalog:
    """The catalog as it is now, keyed by slug, with rows locked against concurrent edits."""

    teams: dict[str, Team]
    environments: dict[str, Environment]
    externals: dict[str, ExternalDependency]
    services: dict[str, Service]
    members: dict[int, dict[str, str]]  # team id -> username -> role
    service_deps: dict[int, set[str]]
    external_deps: dict[int, set[str]]

    @classmethod
    def load(cls, *, lock: bool) -> _Catalog:
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


class _Planner:
    """Compares the entities with the catalog: problems, warnings and the changes to make."""

    def __init__(
        self, entities: list[Entity], catalog: _Catalog, *, prune: bool, all_read: bool
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
                self._fail(
                    entity,
                    f"spec.members.{username}",
                    f"no user {username!r}; people sign up or are created by an admin first",
                )

    def _fail(self, entity: Entity, path: str, message: str) -> None:
        self.problems.append(Problem(entity.where, path, message))

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
        for component in _cycles(graph):
            # Only loops through this import's services: others are not its business.
            first = next((s for s in component if s in declared), None)
            if first is None:
                continue
            loop = _loop_through(first, graph, set(component))
            others = sorted(set(component) - set(loop))
            self.warnings.append(
                Problem(
                    declared[first].where,
                    "spec.dependsOn",
                    "dependency cycle (allowed, but check it is real): "
                    + " -> ".join([*loop, first])
                    + (f"; also in the same loop: {', '.join(others)}" if others else ""),
                )
            )


def _loop_through(start: str, graph: dict[str, set[str]], within: set[str]) -> list[str]:
    """The shortest path from `start` back to itself inside one strongly connected part."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & within):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]


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


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one service (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next((c for c in edges if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# --- permissions ----------------------------------------------------------------------


def authorize(changes: Iterable[Change], access: Access) -> None:
    """Raise CatalogForbidden naming every team (or admin-only change) the caller lacks."""
    refusals: dict[str, list[str]] = {}
    allowed: dict[tuple[int, int | None], bool] = {}
    for change in changes:
        if change.action == Action.UNCHANGED:
            continue
        if change.needs_admin and not access.is_admin:
            refusals.setdefault("only a platform admin may change", []).append(change.label)
        for team in change.teams:
            key = (team.pk, change.service.pk if change.service else None)
            if key not in allowed:
                allowed[key] = access.can(Scope.WRITE, team, change.service)
            if not allowed[key]:
                reason = access.why_not(Scope.WRITE, team, change.service)
                refusals.setdefault(f"team {team.slug} ({reason})", []).append(change.label)
    if refusals:
        raise CatalogForbidden(
            "this import needs write access you do not have: "
            + "; ".join(f"{who}: {', '.join(labels)}" for who, labels in refusals.items())
        )


# --- applying -------------------------------------------------------------------------


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
) -> ImportResult:
    """Check every document, then apply all of them in one transaction, or nothing.

    Raises CatalogInvalid listing every problem, CatalogForbidden when `access` is given
    and lacks write access to a team the import changes, or CatalogConflict when a
    concurrent write got in the way.
    """
    documents, problems, complete = _parse(sources)
    warnings: list[Problem] = []
    entities = _read_entities(documents, problems, warnings)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK_ID])
            planner = _Planner(entities, _Catalog.load(lock=True), prune=prune, all_read=complete)
            changes = planner.plan()
            problems += planner.problems
            if problems:
                raise CatalogInvalid(_in_file_order(problems, sources))
            if access is not None:
                authorize(changes, access)
            result = ImportResult(changes, warnings + planner.warnings, dry_run)
            if not dry_run:
                _Applier(planner.catalog, actor).apply(result, sources)
    except IntegrityError as exc:
        # Someone changed the catalog through the API between our read and our write.
        raise CatalogConflict(
            f"the catalog changed while importing; nothing was written, try again ({exc})"
        ) from exc
    return result


def _in_file_order(problems: list[Problem], sources: Sequence[Source]) -> list[Problem]:
    """Problems by file and document, as a reader goes through them (--prune ones last)."""
    position = {source.name: n for n, source in enumerate(sources)}
    return sorted(
        problems, key=lambda p: (position.get(p.where.file, len(position)), p.where.index)
    )


class _Applier:
    """Writes a checked plan: columns, then memberships and dependencies, then deletions."""

    def __init__(self, catalog: _Catalog, actor: Any) -> None:
        self.catalog = catalog
        self.actor = actor
        self.events_left = MAX_ENTITY_EVENTS

    def apply(self, result: ImportResult, sources: Sequence[Source]) -> None:
        order = list(Kind)
        writes = sorted(
            (c for c in result.changes if c.action in (Action.CREATED, Action.UPDATED)),
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
        for change in result.changes:
            if change.action == Action.DELETED:
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
        if change.kind not in (Kind.TEAM, Kind.SERVICE) or self.events_left <= 0:
            return
        self.events_left -= 1
        publish(
            f"{change.kind.lower()}.{change.action}",
            actor=self.actor,
            subject=change.obj,
            message=f"{change.label} {change.action} by catalog import",
            payload={"fields": change.fields, "source": "catalog import"},
        )

    def _summary_event(self, result: ImportResult, sources: Sequence[Source]) -> None:
        changed = result.changed
        publish(
            "catalog.imported",
            actor=self.actor,
            message=f"catalog import: {result.summary()}",
            payload={
                **result.counts,
                "sources": [s.name for s in sources][:20],
                "changes": [c.as_dict() for c in changed[:MAX_PAYLOAD_CHANGES]],
                "truncated": len(changed) > MAX_PAYLOAD_CHANGES,
            },
        )


# --- export ---------------------------------------------------------------------------

EXPORT_HEADER = (
    f"# Signalbox catalog ({API_VERSION}). Edit and re-import with:\n"
    "#   manage.py catalog import FILE   or   POST /api/v1/catalog/import\n"
)


def export_documents() -> list[dict[str, Any]]:
    """The whole catalog as documents: teams, environments, external dependencies, services."""
    catalog = _Catalog.load(lock=False)
    documents: list[dict[str, Any]] = []
    for kind in Kind:
        for obj in catalog.existing(kind).values():
            documents.append(_document(kind, obj, catalog))
    return documents


def export_catalog() -> str:
    """The whole catalog as multi-document YAML, byte-for-byte stable for the same data."""
    body = yaml.safe_dump_all(
        export_documents(),
        explicit_start=True,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return EXPORT_HEADER + body


def _document(kind: Kind, obj: Any, catalog: _Catalog) -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {"metadata": {"name": obj.slug}, "spec": {}}
    if kind == Kind.SERVICE:
        sections["spec"]["owner"] = obj.team.slug
    for attr in ATTRS[kind]:
        value = getattr(obj, attr.field)
        if not (attr.omit_when_default and value == attr.default):
            sections[attr.section][attr.key] = value
    if kind == Kind.TEAM and catalog.members.get(obj.pk):
        sections["spec"]["members"] = dict(sorted(catalog.members[obj.pk].items()))
    if kind == Kind.SERVICE:
        refs = [SERVICE_REF + s for s in sorted(catalog.service_deps.get(obj.pk, set()))]
        refs += [EXTERNAL_REF + s for s in sorted(catalog.external_deps.get(obj.pk, set()))]
        if refs:
            sections["spec"]["dependsOn"] = refs
    return {"apiVersion": API_VERSION, "kind": str(kind), **sections}
