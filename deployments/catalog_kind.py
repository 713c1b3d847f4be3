"""Freeze windows in the catalog as code: the `FreezeWindow` kind of catalog files.

One document holds every freeze of one environment, one-off and weekly, and an import
makes that environment's freezes exactly the listed ones:

    apiVersion: signalbox.dev/v1
    kind: FreezeWindow
    metadata: {environment: production}
    spec:
      windows:
        - {reason: year-end close, startsAt: "2026-12-23T00:00:00Z", endsAt: "2027-01-04T00:00:00Z"}
      recurring:
        - {name: weekend, days: [fri], startTime: "16:00", durationMinutes: 3840,
           timezone: Europe/Berlin, reason: nobody on call}

A freeze is known by its values: one in the catalog equal to one in the file stays as it
is; the file's others are created and the catalog's others deleted, through
`controlplane.changes` with the freeze API's serializers (one audited event each).
Environments are platform-wide, so only an admin may change their freezes, as in the API.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time
from typing import Any

from rest_framework.serializers import ModelSerializer

from catalog.catalog_yaml import CatalogConflict
from catalog.catalog_yaml.extensions import Context, ExtraInvalid, Planned, document, register_kind
from catalog.catalog_yaml.kinds import Action
from catalog.catalog_yaml.kinds import Kind as CatalogKind
from catalog.models import Environment
from controlplane import changes
from controlplane.events import ResourceEvents
from deployments.api.serializers import FreezeWindowSerializer, RecurringFreezeWindowSerializer
from deployments.choices import FREEZE_WINDOW_EVENTS, RECURRING_FREEZE_WINDOW_EVENTS
from deployments.models import FreezeWindow, RecurringFreezeWindow

KIND = "FreezeWindow"


def key_of(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


class Section:
    """One list of a document (`windows` or `recurring`): its model, serializer and fields."""

    def __init__(
        self,
        name: str,
        model: type[Any],
        serializer: type[ModelSerializer[Any]],
        events: ResourceEvents,
        fields: tuple[str, ...],
        defaults: dict[str, Any],
    ) -> None:
        self.name, self.model, self.serializer, self.events = name, model, serializer, events
        self.fields, self.defaults = fields, defaults
        self.keys = {key_of(f): f for f in fields}

    def key(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            tuple(values[f]) if isinstance(values[f], list) else values[f] for f in self.fields
        )

    def key_of(self, obj: Any) -> tuple[Any, ...]:
        return self.key({f: getattr(obj, f) for f in self.fields})

    def written(self, obj: Any) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for field in self.fields:
            value = getattr(obj, field)
            if field in self.defaults and value == self.defaults[field]:
                continue
            item[key_of(field)] = _text(value)
        return item

    def order(self, obj: Any) -> tuple[str, ...]:
        return tuple(str(_text(getattr(obj, f))) for f in self.fields)


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, time):
        return value.strftime("%H:%M:%S" if value.second else "%H:%M")
    return value


SECTIONS = (
    Section(
        "windows",
        FreezeWindow,
        FreezeWindowSerializer,
        FREEZE_WINDOW_EVENTS,
        ("reason", "starts_at", "ends_at"),
        {},
    ),
    Section(
        "recurring",
        RecurringFreezeWindow,
        RecurringFreezeWindowSerializer,
        RECURRING_FREEZE_WINDOW_EVENTS,
        ("name", "days", "start_time", "duration_minutes", "timezone", "reason"),
        {"timezone": "UTC"},
    ),
)


def label(body: dict[str, Any]) -> str:
    environment = body["metadata"]["environment"]
    if not isinstance(environment, str):
        raise TypeError
    return environment


def export() -> list[dict[str, Any]]:
    """The freezes of every environment that has any, each list in a stable order."""
    by_environment: dict[str, dict[str, list[Any]]] = {}
    for section in SECTIONS:
        for obj in section.model.objects.select_related("environment"):
            lists = by_environment.setdefault(obj.environment.slug, {})
            lists.setdefault(section.name, []).append(obj)
    documents = []
    for slug, lists in sorted(by_environment.items()):
        spec = {
            section.name: [
                section.written(o) for o in sorted(lists[section.name], key=section.order)
            ]
            for section in SECTIONS
            if section.name in lists
        }
        documents.append(document(KIND, {"environment": slug}, spec))
    return documents


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check every freeze with the API's serializers; plan what to create and delete."""
    slug = body["metadata"]["environment"]
    problems: dict[str, str] = {}
    if not context.will_exist(CatalogKind.ENVIRONMENT, slug):
        problems["metadata.environment"] = (
            f"Environment/{slug} is neither in the files nor in the catalog"
        )
    spec = body.get("spec") or {}
    wanted: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
    for section in SECTIONS:
        wanted[section.name] = []
        names: dict[Any, int] = {}
        for index, raw in enumerate(spec.get(section.name) or []):
            path = f"spec.{section.name}[{index}]"
            data = {
                **section.defaults,
                **{section.keys[k]: v for k, v in raw.items() if v is not None},
            }
            if "name" in section.fields and data.get("name") in names:
                problems[f"{path}.name"] = (
                    f"{data['name']!r} is also spec.{section.name}[{names[data['name']]}]"
                )
                continue
            names[data.get("name")] = index
            # Checked against an unsaved freeze of an unsaved environment: this import may
            # create the environment, and the serializers read the instance's every field.
            blank = section.model(environment=Environment(slug=slug))
            serializer = section.serializer(blank, data=data, partial=True)
            if not serializer.is_valid():
                for field, messages in serializer.errors.items():
                    where = path if field == "non_field_errors" else f"{path}.{key_of(field)}"
                    problems[where] = " ".join(str(m) for m in messages)
                continue
            missing = [f for f in section.fields if f not in serializer.validated_data]
            if missing:
                problems.update({f"{path}.{key_of(f)}": "missing" for f in missing})
                continue
            checked = {f: serializer.validated_data[f] for f in section.fields}
            wanted[section.name].append((section.key(checked), data))
    if problems:
        raise ExtraInvalid(problems)
    environment = Environment.objects.filter(slug=slug).first()
    creations: dict[str, list[dict[str, Any]]] = {}
    doomed: dict[str, list[Any]] = {}
    fields: list[str] = []
    existed = False
    for section in SECTIONS:
        current = (
            list(section.model.objects.select_for_update().filter(environment=environment))
            if environment
            else []
        )
        existed = existed or bool(current)
        unmatched = Counter(key for key, _ in wanted[section.name])
        doomed[section.name] = []
        for obj in current:
            key = section.key_of(obj)
            if unmatched[key] > 0:
                unmatched[key] -= 1
            else:
                doomed[section.name].append(obj)
        creations[section.name] = []
        for index, (key, data) in enumerate(wanted[section.name]):
            if unmatched[key] > 0:
                unmatched[key] -= 1
                creations[section.name].append(data)
                fields.append(f"spec.{section.name}[{index}]")
        fields += [f"spec.{section.name}: remove {obj}" for obj in doomed[section.name]]
    action = Action.UPDATED if existed else Action.CREATED
    if not fields:
        action = Action.UNCHANGED
    return Planned(
        name=slug, action=action, fields=fields, needs_admin=True, value=(slug, creations, doomed)
    )


def prune(declared: set[str], context: Context) -> list[Planned]:
    """The freezes of environments that have some but no document: all deleted."""
    doomed: dict[str, dict[str, list[Any]]] = {}
    for section in SECTIONS:
        rows = section.model.objects.select_related("environment").exclude(
            environment__slug__in=declared
        )
        for obj in rows.select_for_update(of=("self",)):
            lists = doomed.setdefault(obj.environment.slug, {s.name: [] for s in SECTIONS})
            lists[section.name].append(obj)
    return [
        Planned(
            name=slug,
            action=Action.DELETED,
            needs_admin=True,
            value=(slug, {s.name: [] for s in SECTIONS}, lists),
        )
        for slug, lists in sorted(doomed.items())
    ]


class _Who:
    """What the serializers' `created_by` reads from their context's request: the user."""

    def __init__(self, actor: Any) -> None:
        self.user = getattr(actor, "user", None)


def apply(planned: Planned, actor: Any) -> None:
    """Delete the freezes the file leaves out and create the new ones, as the API does."""
    slug, creations, doomed = planned.value
    for section in SECTIONS:
        for obj in doomed[section.name]:
            changes.delete(obj, actor=actor, events=section.events)
    for section in SECTIONS:
        for data in creations[section.name]:
            serializer = section.serializer(
                data={**data, "environment": slug}, context={"request": _Who(actor)}
            )
            serializer.is_valid(raise_exception=True)
            try:
                changes.create(serializer, actor=actor, events=section.events)
            except changes.Conflict as exc:
                raise CatalogConflict(
                    f"the freezes of {slug} changed while importing; nothing was written, try again"
                ) from exc


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label, pruner=prune)
