"""Maintenance windows in the catalog as code: the `MaintenanceWindow` kind of catalog files.

A maintenance window has no name of its own, so one document holds the windows of one
service, and an import makes that service's windows exactly the listed ones:

    apiVersion: signalbox.dev/v1
    kind: MaintenanceWindow
    metadata: {service: checkout}
    spec:
      windows:
        - {reason: database upgrade, environment: production,
           startsAt: "2026-12-05T02:00:00Z", endsAt: "2026-12-05T04:00:00Z"}
        - {reason: weekly patching, cron: "0 3 * * 6", timezone: Europe/Berlin,
           durationMinutes: 60}

A window is known by its values: one in the catalog equal to one in the file stays as it
is; the file's others are created and the catalog's others deleted, each through
`controlplane.changes` with the API's serializer (one audited event each), as the API does.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from catalog.catalog_yaml import CatalogConflict
from catalog.catalog_yaml.extensions import Context, ExtraInvalid, Planned, document, register_kind
from catalog.catalog_yaml.kinds import Action
from catalog.catalog_yaml.kinds import Kind as CatalogKind
from catalog.models import Service
from controlplane import changes
from health.api.serializers import MaintenanceWindowSerializer
from health.catalog_kind import key_of, serializer_problems
from health.choices import MAINTENANCE_EVENTS
from health.models import MaintenanceWindow

KIND = "MaintenanceWindow"
FIELDS = ("reason", "starts_at", "ends_at", "cron", "timezone", "duration_minutes")
KEYS = {key_of(f): f for f in ("environment", *FIELDS)}
DEFAULTS: dict[str, Any] = {
    "reason": "",
    "starts_at": None,
    "ends_at": None,
    "cron": "",
    "timezone": "UTC",
    "duration_minutes": None,
}
Key = tuple[Any, ...]


def label(body: dict[str, Any]) -> str:
    service = body["metadata"]["service"]
    if not isinstance(service, str):
        raise TypeError
    return service


def _key(environment: str | None, values: dict[str, Any]) -> Key:
    return (environment, *(values[f] for f in FIELDS))


def _key_of(window: MaintenanceWindow) -> Key:
    environment = window.environment.slug if window.environment else None
    return _key(environment, {f: getattr(window, f) for f in FIELDS})


def _text(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


def _order(window: MaintenanceWindow) -> tuple[Any, ...]:
    return (
        window.environment.slug if window.environment else "",
        window.cron,
        _text(window.starts_at),
        _text(window.ends_at),
        window.reason,
        window.timezone,
        window.duration_minutes or 0,
    )


def _written(window: MaintenanceWindow) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if window.reason:
        item["reason"] = window.reason
    if window.environment is not None:
        item["environment"] = window.environment.slug
    for field in FIELDS[1:]:
        value = getattr(window, field)
        if value != DEFAULTS[field]:
            item[key_of(field)] = _text(value) if isinstance(value, datetime) else value
    return item


def export() -> list[dict[str, Any]]:
    """The windows of every service that has any, in a stable order of their values."""
    by_service: dict[str, list[MaintenanceWindow]] = {}
    for window in MaintenanceWindow.objects.select_related("service", "environment"):
        by_service.setdefault(window.service.slug, []).append(window)
    return [
        document(
            KIND, {"service": slug}, {"windows": [_written(w) for w in sorted(windows, key=_order)]}
        )
        for slug, windows in sorted(by_service.items())
    ]


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check every window with the API's serializer; plan what to create and delete."""
    slug = body["metadata"]["service"]
    problems: dict[str, str] = {}
    if not context.will_exist(CatalogKind.SERVICE, slug):
        problems["metadata.service"] = f"Service/{slug} is neither in the files nor in the catalog"
    wanted: list[tuple[Key, dict[str, Any]]] = []
    for index, raw in enumerate((body.get("spec") or {}).get("windows") or []):
        path = f"spec.windows[{index}]"
        given = {KEYS[k]: v for k, v in raw.items() if v is not None}
        environment = given.pop("environment", None)
        if environment is not None and not context.will_exist(CatalogKind.ENVIRONMENT, environment):
            problems[f"{path}.environment"] = (
                f"Environment/{environment} is neither in the files nor in the catalog"
            )
        data = {**DEFAULTS, **given}
        # Checked without the service and environment, which this import may create.
        serializer = MaintenanceWindowSerializer(MaintenanceWindow(), data=data, partial=True)
        if not serializer.is_valid():
            for field, message in serializer_problems(serializer.errors).items():
                problems[path + field.removeprefix("spec")] = message
            continue
        checked = {f: serializer.validated_data.get(f, DEFAULTS[f]) for f in FIELDS}
        wanted.append((_key(environment, checked), {**data, "environment": environment}))
    if problems:
        raise ExtraInvalid(problems)
    service = Service.objects.select_related("team").filter(slug=slug).first()
    current = (
        list(
            MaintenanceWindow.objects.select_for_update(of=("self",))
            .select_related("environment")
            .filter(service=service)
        )
        if service
        else []
    )
    # Equal values on both sides stay; the rest is created or deleted.
    unmatched = Counter(key for key, _ in wanted)
    doomed = []
    for window in current:
        key = _key_of(window)
        if unmatched[key] > 0:
            unmatched[key] -= 1
        else:
            doomed.append(window)
    creations = []
    for index, (key, data) in enumerate(wanted):
        if unmatched[key] > 0:
            unmatched[key] -= 1
            creations.append((index, data))
    fields = [f"spec.windows[{index}]" for index, _ in creations]
    fields += [f"spec.windows: remove {_describe(w)}" for w in doomed]
    action = Action.UPDATED if current else Action.CREATED
    if not fields:
        action = Action.UNCHANGED
    return Planned(
        name=slug,
        action=action,
        fields=fields,
        teams=[service.team] if service else [],
        service=service,
        value=(slug, [data for _, data in creations], doomed),
    )


def _describe(window: MaintenanceWindow) -> str:
    when = window.cron or f"{_text(window.starts_at)}..{_text(window.ends_at)}"
    return f"{window.reason or 'window'} ({when})"


def prune(declared: set[str], context: Context) -> list[Planned]:
    """The windows of services that have some but no document: all deleted."""
    by_service: dict[str, list[MaintenanceWindow]] = {}
    rows = (
        MaintenanceWindow.objects.select_related("service__team", "environment")
        .select_for_update(of=("self",))
        .exclude(service__slug__in=declared)
    )
    for window in rows:
        by_service.setdefault(window.service.slug, []).append(window)
    return [
        Planned(
            name=slug,
            action=Action.DELETED,
            teams=[windows[0].service.team],
            service=windows[0].service,
            value=(slug, [], windows),
        )
        for slug, windows in sorted(by_service.items())
    ]


def apply(planned: Planned, actor: Any) -> None:
    """Delete the windows the file leaves out and create the new ones, as the API does."""
    slug, creations, doomed = planned.value
    for window in doomed:
        changes.delete(window, actor=actor, events=MAINTENANCE_EVENTS)
    user = getattr(actor, "user", None)
    created_by = user if user is not None and user.is_authenticated else None
    for data in creations:
        serializer = MaintenanceWindowSerializer(data={**data, "service": slug})
        serializer.is_valid(raise_exception=True)
        try:
            changes.create(
                serializer, actor=actor, events=MAINTENANCE_EVENTS, created_by=created_by
            )
        except changes.Conflict as exc:
            raise CatalogConflict(
                f"the maintenance windows of {slug} changed while importing; nothing was "
                "written, try again"
            ) from exc


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label, pruner=prune)
