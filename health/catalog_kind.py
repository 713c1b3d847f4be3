"""Check specs in the catalog as code: the `CheckSpec` kind of catalog files.

One document is the check spec of one service (how its instances are probed):

    apiVersion: signalbox.dev/v1
    kind: CheckSpec
    metadata: {service: checkout}
    spec:
      path: /ready
      expectedStatuses: 200-299
      jsonConditions:
        - {path: $.status, op: eq, value: pass}
      intervalSeconds: 15

The spec's keys are the check spec API's fields in camelCase; a key left out takes its
default, so a document is the whole spec and an import replaces it. The values are checked
by the API's own serializer (`CheckSpecSerializer`, hence `health.specs.spec_errors`), and
saved through `controlplane.changes` like the API, so each change is one audited event.
With `--prune`, the spec of a service whose CheckSpec is not in the files is deleted (the
service goes back to the defaults). Per-instance overrides name an instance by its id,
which no other installation shares: they stay out of catalog files.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Field

from catalog.catalog_yaml.extensions import (
    Context,
    ExtraInvalid,
    Planned,
    document,
    register_kind,
    save,
)
from catalog.catalog_yaml.kinds import Action
from catalog.catalog_yaml.kinds import Kind as CatalogKind
from catalog.models import Service
from controlplane import changes
from health.api.serializers import CheckSpecSerializer
from health.choices import CHECK_SPEC_EVENTS
from health.models import CheckSpec

KIND = "CheckSpec"
# The serializer's fields a document does not carry: the target is its metadata.
NOT_IN_SPEC = frozenset({"id", "service", "instance", "updated_at"})
FIELDS: tuple[str, ...] = tuple(
    name for name in CheckSpecSerializer.Meta.fields if name not in NOT_IN_SPEC
)


def key_of(field: str) -> str:
    """The document's key for an API field: interval_seconds -> intervalSeconds."""
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


KEYS: dict[str, str] = {key_of(f): f for f in FIELDS}


def _default(field: str) -> Any:
    model_field = CheckSpec._meta.get_field(field)
    assert isinstance(model_field, Field)
    return model_field.get_default()


def label(body: dict[str, Any]) -> str:
    service = body["metadata"]["service"]
    if not isinstance(service, str):
        raise TypeError
    return service


def _values(spec: CheckSpec) -> dict[str, Any]:
    return {f: getattr(spec, f) for f in FIELDS}


def export() -> list[dict[str, Any]]:
    """Every service's check spec, by service slug; only the values that are not defaults."""
    specs = CheckSpec.objects.filter(service__isnull=False).select_related("service")
    documents = []
    for spec in sorted(specs, key=lambda s: s.service.slug if s.service else ""):
        assert spec.service is not None
        written = {key_of(f): value for f, value in _values(spec).items() if value != _default(f)}
        documents.append(document(KIND, {"service": spec.service.slug}, written))
    return documents


def _wanted(body: dict[str, Any]) -> dict[str, Any]:
    """The API request body the document stands for: every field, defaults where left out."""
    given = {KEYS[k]: v for k, v in (body.get("spec") or {}).items() if v is not None}
    return {f: given[f] if f in given else _default(f) for f in FIELDS}


def serializer_problems(errors: Any) -> dict[str, str]:
    """The serializer's errors by document path: interval_seconds -> spec.intervalSeconds."""
    found: dict[str, str] = {}
    for field, messages in errors.items():
        path = "spec" if field == "non_field_errors" else f"spec.{key_of(field)}"
        if isinstance(messages, dict):  # a nested field such as one json condition
            text = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in messages.items())
        else:
            text = " ".join(str(m) for m in messages)
        found[path] = re.sub(r"\s+", " ", text)
    return found


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check one CheckSpec document with the API's serializer and plan it."""
    slug = body["metadata"]["service"]
    if not context.will_exist(CatalogKind.SERVICE, slug):
        raise ExtraInvalid(
            {"metadata.service": f"Service/{slug} is neither in the files nor in the catalog"}
        )
    wanted = _wanted(body)
    # A spec of a service this import creates is checked without it: the service does not
    # exist yet. The unsaved default spec makes the serializer check every value alone.
    serializer = CheckSpecSerializer(CheckSpec(), data=wanted)
    if not serializer.is_valid():
        raise ExtraInvalid(serializer_problems(serializer.errors))
    checked = {f: v for f, v in serializer.validated_data.items() if f in FIELDS}
    service = Service.objects.select_related("team").filter(slug=slug).first()
    current = (
        CheckSpec.objects.select_for_update().filter(service=service).first() if service else None
    )
    if current is None:
        action, fields = Action.CREATED, []
    else:
        before = _values(current)
        fields = [f"spec.{key_of(f)}" for f in FIELDS if before[f] != checked[f]]
        action = Action.UPDATED if fields else Action.UNCHANGED
    return Planned(
        name=slug,
        action=action,
        fields=fields,
        teams=[service.team] if service else [],
        service=service,
        value=(slug, wanted, current),
    )


def prune(declared: set[str], context: Context) -> list[Planned]:
    """The service specs the files do not declare: deleted, the services back to defaults."""
    doomed = (
        CheckSpec.objects.filter(service__isnull=False)
        .exclude(service__slug__in=declared)
        .select_related("service__team")
        .select_for_update(of=("self",))
        .order_by("service__slug")
    )
    planned = []
    for spec in doomed:
        assert spec.service is not None
        planned.append(
            Planned(
                name=spec.service.slug,
                action=Action.DELETED,
                teams=[spec.service.team],
                service=spec.service,
                value=(spec.service.slug, None, spec),
            )
        )
    return planned


def apply(planned: Planned, actor: Any) -> None:
    """Create, replace or delete the spec as the API does (one audited event each)."""
    slug, wanted, current = planned.value
    if planned.action == Action.DELETED:
        changes.delete(current, actor=actor, events=CHECK_SPEC_EVENTS)
        return
    if current is None:
        serializer = CheckSpecSerializer(data={**wanted, "service": slug})
    else:
        serializer = CheckSpecSerializer(current, data=wanted)
    # Checked already; the service this import created now exists for the relation.
    serializer.is_valid(raise_exception=True)
    save(serializer, current, actor, CHECK_SPEC_EVENTS, f"the check spec of {slug}")


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label, pruner=prune)
