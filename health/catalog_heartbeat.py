"""Heartbeats in the catalog as code: the `Heartbeat` kind of catalog files.

One document is one heartbeat of a service (a cron or batch job that promises to ping):

    apiVersion: signalbox.dev/v1
    kind: Heartbeat
    metadata: {service: checkout, name: nightly-export, environment: production}
    spec:
      scheduleKind: cron
      cron: "0 3 * * *"
      timezone: Europe/Berlin
      graceSeconds: 1800

A heartbeat is named by its service, environment (left out: every environment) and name,
as the API's unique rule has it. The spec's keys are the heartbeat API's writable fields in
camelCase; a key left out takes its default. Values are checked by the API's serializer
and saved through `controlplane.changes`, one audited event per change. The ping URL's key
is not in the files (anyone holding it can ping): a heartbeat created by an import gets a
new one. Its state (status, pings, pause) is not configuration and is not in the files.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Field

from catalog.catalog_yaml.extensions import Context, ExtraInvalid, Planned, register_kind, save
from catalog.catalog_yaml.kinds import API_VERSION, Action
from catalog.catalog_yaml.kinds import Kind as CatalogKind
from catalog.models import Service
from controlplane import changes
from health.api.serializers import HeartbeatSerializer
from health.catalog_kind import key_of, serializer_problems
from health.choices import HEARTBEAT_EVENTS
from health.models import Heartbeat

KIND = "Heartbeat"
# Stands for "every environment" in a heartbeat's name (no environment slug is "*").
EVERY_ENVIRONMENT = "*"
NOT_IN_SPEC = frozenset({"id", "ping_url", "name", "service", "environment"})
FIELDS: tuple[str, ...] = tuple(
    name
    for name in HeartbeatSerializer.Meta.fields
    if name not in NOT_IN_SPEC and name not in HeartbeatSerializer.Meta.read_only_fields
)
KEYS: dict[str, str] = {key_of(f): f for f in FIELDS}


def _default(field: str) -> Any:
    model_field = Heartbeat._meta.get_field(field)
    assert isinstance(model_field, Field)
    return model_field.get_default()


def _identity(metadata: dict[str, Any]) -> tuple[str, str | None, str]:
    service, name = metadata["service"], metadata["name"]
    environment = metadata.get("environment")
    if not (isinstance(service, str) and isinstance(name, str)):
        raise TypeError
    if environment is not None and not isinstance(environment, str):
        raise TypeError
    return service, environment, name


def _name(service: str, environment: str | None, name: str) -> str:
    """checkout/production/nightly, or checkout/*/nightly for every environment."""
    return f"{service}/{environment or EVERY_ENVIRONMENT}/{name}"


def label(body: dict[str, Any]) -> str:
    return _name(*_identity(body["metadata"]))


def _values(heartbeat: Heartbeat) -> dict[str, Any]:
    return {f: getattr(heartbeat, f) for f in FIELDS}


def export() -> list[dict[str, Any]]:
    """Every heartbeat by service, environment ("every" first) and name; non-defaults only."""
    rows = Heartbeat.objects.select_related("service", "environment")

    def order(h: Heartbeat) -> tuple[str, str, str]:
        return (h.service.slug, h.environment.slug if h.environment else "", h.name)

    documents = []
    for heartbeat in sorted(rows, key=order):
        metadata: dict[str, Any] = {"service": heartbeat.service.slug, "name": heartbeat.name}
        if heartbeat.environment is not None:
            metadata["environment"] = heartbeat.environment.slug
        spec = {key_of(f): value for f, value in _values(heartbeat).items() if value != _default(f)}
        documents.append(
            {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
        )
    return documents


def _wanted(body: dict[str, Any]) -> dict[str, Any]:
    given = {KEYS[k]: v for k, v in (body.get("spec") or {}).items() if v is not None}
    return {f: given[f] if f in given else _default(f) for f in FIELDS}


def _find(service: str, environment: str | None, name: str) -> Heartbeat | None:
    rows = Heartbeat.objects.select_for_update().filter(service__slug=service, name=name)
    if environment is None:
        return rows.filter(environment__isnull=True).first()
    return rows.filter(environment__slug=environment).first()


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check one Heartbeat document with the API's serializer and plan it."""
    service_slug, environment_slug, name = _identity(body["metadata"])
    problems: dict[str, str] = {}
    if not context.will_exist(CatalogKind.SERVICE, service_slug):
        problems["metadata.service"] = (
            f"Service/{service_slug} is neither in the files nor in the catalog"
        )
    if environment_slug is not None and not context.will_exist(
        CatalogKind.ENVIRONMENT, environment_slug
    ):
        problems["metadata.environment"] = (
            f"Environment/{environment_slug} is neither in the files nor in the catalog"
        )
    wanted = _wanted(body)
    # Checked without the service and environment, which this import may create: an
    # unsaved heartbeat as the instance makes the serializer check the values alone.
    serializer = HeartbeatSerializer(Heartbeat(), data={**wanted, "name": name}, partial=True)
    if not serializer.is_valid():
        found = serializer_problems(serializer.errors)
        if "spec.name" in found:
            found["metadata.name"] = found.pop("spec.name")
        problems.update(found)
    if problems:
        raise ExtraInvalid(problems)
    checked = {f: v for f, v in serializer.validated_data.items() if f in FIELDS}
    service = Service.objects.select_related("team").filter(slug=service_slug).first()
    current = _find(service_slug, environment_slug, name) if service else None
    if current is None:
        action, fields = Action.CREATED, []
    else:
        before = _values(current)
        fields = [f"spec.{key_of(f)}" for f in FIELDS if before[f] != checked[f]]
        action = Action.UPDATED if fields else Action.UNCHANGED
    return Planned(
        name=_name(service_slug, environment_slug, name),
        action=action,
        fields=fields,
        teams=[service.team] if service else [],
        service=service,
        value=(service_slug, environment_slug, name, wanted, current),
    )


def prune(declared: set[str], context: Context) -> list[Planned]:
    """The heartbeats the files do not declare: deleted (their ping URLs stop working)."""
    rows = (
        Heartbeat.objects.select_related("service__team", "environment")
        .select_for_update(of=("self",))
        .order_by("service__slug", "environment__slug", "name")
    )
    planned = []
    for heartbeat in rows:
        environment = heartbeat.environment.slug if heartbeat.environment else None
        named = _name(heartbeat.service.slug, environment, heartbeat.name)
        if named in declared:
            continue
        planned.append(
            Planned(
                name=named,
                action=Action.DELETED,
                teams=[heartbeat.service.team],
                service=heartbeat.service,
                value=(heartbeat.service.slug, environment, heartbeat.name, None, heartbeat),
            )
        )
    return planned


def apply(planned: Planned, actor: Any) -> None:
    """Create, change or delete the heartbeat as the API does (one audited event each)."""
    service_slug, environment_slug, name, wanted, current = planned.value
    if planned.action == Action.DELETED:
        changes.delete(current, actor=actor, events=HEARTBEAT_EVENTS)
        return
    if current is None:
        target = {"name": name, "service": service_slug, "environment": environment_slug}
        serializer = HeartbeatSerializer(data={**wanted, **target})
    else:
        serializer = HeartbeatSerializer(current, data=wanted, partial=True)
    serializer.is_valid(raise_exception=True)
    save(serializer, current, actor, HEARTBEAT_EVENTS, f"the heartbeat {planned.name}")


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label, pruner=prune)
