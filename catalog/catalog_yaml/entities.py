"""Checking each document on its own (schema, model limits) and turning it into an entity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import models

from catalog.catalog_yaml.kinds import ATTRS, MODEL_OF, SERVICE_REF, TITLE, Attr, Kind
from catalog.catalog_yaml.problems import Location, Problem
from catalog.catalog_yaml.reading import Document, parent_field
from catalog.catalog_yaml.schema import schema_problems
from catalog.choices import Role, StatusSource

# The mappings where a key with no value (`title:`) counts as left out.
SECTIONS = ("metadata", "spec")


@dataclass
class Entity:
    """One valid document: a kind, a name and the values it declares."""

    kind: Kind
    name: str
    where: Location
    document: Document
    values: dict[str, Any]  # model field -> value, for the ATTRS columns
    owner: str = ""  # Service: the owning team's slug
    services: list[tuple[str, str]] = field(default_factory=list)  # (slug, YAML path)
    externals: list[tuple[str, str]] = field(default_factory=list)
    members: dict[str, str] | None = None  # Team: username -> role, None when not declared

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    def problem(self, path: str, message: str, *, at_key: bool = False) -> Problem:
        """A problem with one of this entity's fields, placed at the field in the file."""
        return self.document.problem(self.where, path, message, at_key=at_key)


class _DocumentReader:
    """Checks one document, collecting every problem instead of stopping at the first.

    The schema checks the structure; what is left here is what it cannot say: the model
    fields' own validators (URLs), NUL characters, and a service's list of dependencies.
    """

    def __init__(self, document: Document) -> None:
        self.document = document
        self.where = _named(document.where, document.body)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.faulty: set[str] = set()  # fields the schema found wrong

    def fail(self, path: str, message: str) -> None:
        self.problems.append(self.document.problem(self.where, path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(self.document.problem(self.where, path, message))

    def read(self) -> Entity | None:
        nul_paths = _paths_with_nul(self.document.body)
        for path in nul_paths:
            self.fail(path, "contains a NUL character, which the database cannot store")
        if nul_paths:
            return None
        body = _without_nulls(self.document.body)
        self.problems += schema_problems(self.document, body, self.where)
        self.faulty = {p.field for p in self.problems}
        if not (self._sound("kind") and self._sound("metadata")):
            return None
        kind, metadata = Kind(body["kind"]), body["metadata"]
        name = metadata["name"] if self._sound("metadata.name") else None
        spec = body.get("spec", {}) if self._sound("spec") else {}
        entity = Entity(kind, name or "", self.where, self.document, values={})
        if metadata.get("annotations") is not None and self._sound("metadata.annotations"):
            self.warn(
                "metadata.annotations",
                "accepted for Backstage compatibility but not stored; export leaves them out",
            )
        sections = {"metadata": metadata, "spec": spec}
        for attr in ATTRS[kind]:
            if self._sound(attr.path):
                self._attr(entity, attr, sections[attr.section])
        if kind == Kind.TEAM:
            entity.members = self._members(spec)
        elif kind == Kind.SERVICE:
            self._service(entity, spec)
        elif kind == Kind.EXTERNAL:
            self._status_source(entity)
        # Returned even with problems, so its references are checked too; the import
        # stops before applying anything when there is any problem.
        return entity if name else None

    def _status_source(self, entity: Entity) -> None:
        """A watched dependency needs the address it is watched at (as the API says)."""
        source = entity.values.get("status_source")
        if source == StatusSource.STATUSPAGE and not entity.values.get("status_page_url"):
            self.fail("spec.statusPage", "a statuspage source needs the page's base URL")
        if source == StatusSource.PROBE and not entity.values.get("probe_url"):
            self.fail("spec.probeUrl", "a probe source needs the URL to probe")

    def _sound(self, path: str) -> bool:
        """Whether the schema found nothing wrong with this field or what holds it."""
        if not self.faulty:
            return True
        while path:
            if path in self.faulty:
                return False
            path = parent_field(path)
        return "" not in self.faulty

    def _attr(self, entity: Entity, attr: Attr, section: dict[Any, Any]) -> None:
        value = section.get(attr.key)
        if value is None:
            value = (entity.name or "?") if attr is TITLE else attr.default
        if self._clean(MODEL_OF[entity.kind], attr.field, value, attr.path):
            entity.values[attr.field] = value

    def _clean(self, model: type[models.Model], name: str, value: Any, path: str) -> bool:
        """Apply the model field's own validators (length, URL, range)."""
        model_field = cast("models.Field[Any, Any]", model._meta.get_field(name))
        try:
            model_field.clean(value, None)
        except ValidationError as exc:
            self.fail(path, " ".join(exc.messages))
            return False
        return True

    def _members(self, spec: dict[Any, Any]) -> dict[str, str] | None:
        if spec.get("members") is None or not self._sound("spec.members"):
            return None
        members = {
            username: role
            for username, role in spec["members"].items()
            if self._sound(f"spec.members.{username}")
        }
        if members and Role.OWNER not in members.values():
            self.warn("spec.members", "no owner: only platform admins can change it")
        return members

    def _service(self, entity: Entity, spec: dict[Any, Any]) -> None:
        if self._sound("spec.owner"):
            entity.owner = spec.get("owner", "")
        if not self._sound("spec.dependsOn"):
            return
        seen: set[str] = set()
        for position, ref in enumerate(spec.get("dependsOn", [])):
            path = f"spec.dependsOn[{position}]"
            if self._sound(path):
                self._dependency(entity, ref, path, seen)

    def _dependency(self, entity: Entity, ref: str, path: str, seen: set[str]) -> None:
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


def _named(where: Location, body: Any) -> Location:
    """Name the entity in every problem, as soon as its kind and name can be read."""
    if not (isinstance(body, dict) and isinstance(body.get("metadata"), dict)):
        return where
    kind, name = body.get("kind"), body["metadata"].get("name")
    if isinstance(kind, str) and kind in list(Kind) and isinstance(name, str) and name:
        return Location(where.file, where.index, kind, name)
    return where


def _without_nulls(body: Any) -> Any:
    """The document with every key that has no value left out, at its top and in SECTIONS."""
    if not isinstance(body, dict):
        return body
    kept = {key: value for key, value in body.items() if value is not None}
    for section in SECTIONS:
        if isinstance(kept.get(section), dict):
            kept[section] = {k: v for k, v in kept[section].items() if v is not None}
    return kept


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


def read_entities(
    documents: Sequence[Document], problems: list[Problem], warnings: list[Problem]
) -> list[Entity]:
    """The entity of each valid document; every problem and warning on the way, in file order."""
    entities: list[Entity] = []
    first_seen: dict[tuple[Kind, str], Location] = {}
    for document in documents:
        reader = _DocumentReader(document)
        entity = reader.read()
        problems.extend(sorted(reader.problems, key=lambda p: (p.line, p.column)))
        warnings.extend(reader.warnings)
        if entity is None:
            continue
        earlier = first_seen.setdefault((entity.kind, entity.name), entity.where)
        if earlier is not entity.where:
            problems.append(
                entity.problem("metadata.name", f"{entity.label} is also defined at {earlier}")
            )
            continue
        entities.append(entity)
    return entities
