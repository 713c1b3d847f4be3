"""Kinds other apps add to catalog files (catalog may not import them, so they register here).

An app registers a kind in its AppConfig.ready() with `register_kind(name, exporter,
validator, applier)`:

- `exporter()` returns its documents (apiVersion, kind, metadata, spec) for an export;
- `validator(body, context)` checks one document (the schema has already passed it) inside
  the import's transaction, after the catalog's own plan; it returns a `Planned` (what would
  change) or raises `ExtraInvalid` naming the fields at fault;
- `applier(planned, actor)` writes it, in the same transaction, after the catalog's own
  kinds, so a service or environment created by the same import exists by then;
- optionally `pruner(declared, context)`, called only for `--prune`: a `Planned` with
  action `deleted` for each object of the kind whose name is not in `declared` (the names
  the files give); the applier then deletes it. A kind without a pruner is never pruned;
- optionally `notes()`, what an export's reader must know before importing it elsewhere
  (such as the environment variables its secret references name); `manage.py catalog
  export` prints them to stderr.

Registered kinds are applied in the order they were registered (so a kind may name one
registered before it, in the same files), deletions first in the reverse order.

A problem in any document of any kind means nothing at all is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalog.catalog_yaml.kinds import API_VERSION, Action, Kind
from catalog.models import Service, Team


@dataclass(frozen=True)
class Context:
    """What a validator may ask about the import it is part of."""

    will_exist: Callable[[Kind, str], bool]  # in the files, or in the catalog and not pruned
    # Whether secret references (fromEnv, fromFile) may be read: only where the operator
    # runs the import (manage.py), never for a file posted to the API.
    resolve_secrets: bool
    # Whether the import deletes what the files do not declare (`--prune`).
    prune: bool = False
    # (kind, name) of every document of a registered kind in the files.
    declared: frozenset[tuple[str, str]] = frozenset()

    def declares(self, kind: str, name: str) -> bool:
        """Whether the files hold the document `kind/name` of a registered kind."""
        return (kind, name) in self.declared


@dataclass
class Planned:
    """What importing one extra document does: its name, action, changed fields, payload."""

    name: str
    action: Action
    fields: list[str] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)  # existing teams the caller must write to
    service: Service | None = None
    value: Any = None  # whatever the applier needs
    # A change to something platform-wide (an environment's freezes): only admins make it.
    needs_admin: bool = False


class ExtraInvalid(Exception):
    """A document of an extra kind is wrong: field path -> message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


Exporter = Callable[[], list[dict[str, Any]]]
Validator = Callable[[dict[str, Any], Context], Planned]
ExtraApplier = Callable[[Planned, Any], None]
Pruner = Callable[[set[str], Context], list[Planned]]
Notes = Callable[[], list[str]]


@dataclass(frozen=True)
class ExtraKind:
    name: str
    exporter: Exporter
    validator: Validator
    applier: ExtraApplier
    label: Callable[[dict[str, Any]], str]  # the document's name in problems, from metadata
    pruner: Pruner | None = None
    notes: Notes | None = None


EXTRA_KINDS: dict[str, ExtraKind] = {}


def document(kind: str, metadata: dict[str, Any], spec: Any) -> dict[str, Any]:
    """One exported document of a registered kind, its keys in the files' order."""
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def register_kind(
    name: str,
    exporter: Exporter,
    validator: Validator,
    applier: ExtraApplier,
    *,
    label: Callable[[dict[str, Any]], str],
    pruner: Pruner | None = None,
    notes: Notes | None = None,
) -> None:
    """Add a kind of document (its schema must be in catalog.schema.json)."""
    if name in list(Kind):
        raise ValueError(f"{name} is one of the catalog's own kinds")
    EXTRA_KINDS[name] = ExtraKind(name, exporter, validator, applier, label, pruner, notes)


def export_notes() -> list[str]:
    """What the registered kinds say an export's reader must know (see `notes`)."""
    return [note for extra in EXTRA_KINDS.values() if extra.notes for note in extra.notes()]


def extra_kind_of(body: Any) -> ExtraKind | None:
    if isinstance(body, dict) and isinstance(body.get("kind"), str):
        return EXTRA_KINDS.get(body["kind"])
    return None


def save(serializer: Any, current: Any, actor: Any, events: Any, what: str) -> None:
    """Create or update a validated serializer's row through the spine's one write path, as
    the API does (one audited event); a row someone changed meanwhile aborts the import."""
    from catalog.catalog_yaml.problems import CatalogConflict
    from controlplane import changes

    try:
        if current is None:
            changes.create(serializer, actor=actor, events=events)
        else:
            changes.update(serializer, actor=actor, events=events)
    except changes.Conflict as exc:
        raise CatalogConflict(
            f"{what} changed while importing; nothing was written, try again"
        ) from exc
