"""Checking each document on its own and turning the valid ones into entities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import models

from catalog.catalog_yaml.kinds import (
    API_VERSION,
    ATTRS,
    EXTERNAL_REF,
    EXTRA_SPEC_KEYS,
    MODEL_OF,
    SERVICE_REF,
    TITLE,
    TOP_KEYS,
    Attr,
    Kind,
)
from catalog.catalog_yaml.problems import Location, Problem
from catalog.catalog_yaml.reading import Document
from catalog.choices import Role, Tier
from catalog.models import Team


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

    def __init__(self, document: Document) -> None:
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


def read_entities(
    documents: Sequence[Document], problems: list[Problem], warnings: list[Problem]
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
