"""Runtime config in the catalog as code: the `RuntimeConfig` kind of catalog files.

One document is the whole config of one service in one environment (an import replaces it,
through config.change like the API, so one version and one audited event per change):

    apiVersion: signalbox.dev/v1
    kind: RuntimeConfig
    metadata: {service: checkout, environment: production}
    spec:
      entries:
        root: {kind: log_level, value: INFO}
        new-checkout: {kind: flag, value: true}
        stripe-key: {kind: secret, fromEnv: STRIPE_KEY}

Secrets are never inline: `fromEnv: VAR` or `fromFile: PATH`, read by `manage.py catalog
import` (the operator's shell). A file posted to the API cannot read the server's
environment or files: there a secret reference only keeps the secret already set. The
model keeps no reference, so export writes `fromEnv: SIGNALBOX_SECRET_<KEY>` for each secret.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from catalog.catalog_yaml.extensions import Context, ExtraInvalid, Planned, document, register_kind
from catalog.catalog_yaml.kinds import Action
from catalog.catalog_yaml.kinds import Kind as CatalogKind
from catalog.models import Environment, Service
from debugging import config
from debugging.choices import Delivery, Kind
from debugging.models import ConfigVersion

KIND = "RuntimeConfig"
REFERENCES = ("fromEnv", "fromFile")
SOURCE = "catalog import"


def placeholder(key: str) -> str:
    """The environment variable an export names for a secret: SIGNALBOX_SECRET_<KEY>."""
    return "SIGNALBOX_SECRET_" + re.sub(r"[^A-Z0-9]", "_", key.upper())


def label(body: dict[str, Any]) -> str:
    metadata = body["metadata"]
    service, environment = metadata["service"], metadata["environment"]
    if not (isinstance(service, str) and isinstance(environment, str)):
        raise TypeError
    return f"{service}/{environment}"


def export() -> list[dict[str, Any]]:
    """The current config of every service and environment that has one (and any keys)."""
    latest: dict[tuple[int, int], ConfigVersion] = {}
    versions = (
        ConfigVersion.objects.select_related("service", "environment")
        .prefetch_related("entries")
        .order_by("service__slug", "environment__slug", "-number")
    )
    for version in versions:
        latest.setdefault((version.service_id, version.environment_id), version)
    documents = []
    for version in latest.values():
        entries = list(version.entries.all())
        if not entries:
            continue
        keys = [e.key for e in entries]
        written: dict[str, dict[str, Any]] = {}
        for entry in sorted(entries, key=lambda e: (e.key, e.kind)):
            # The same key under two kinds: the second as KIND:KEY, which import reads back.
            name = entry.key if keys.count(entry.key) == 1 else f"{entry.kind}:{entry.key}"
            if entry.kind == Kind.SECRET:
                written[name] = {"kind": entry.kind, "fromEnv": placeholder(entry.key)}
            else:
                written[name] = {"kind": entry.kind, "value": entry.value}
        documents.append(
            document(
                KIND,
                {
                    "service": version.service.slug,
                    "environment": version.environment.slug,
                },
                {"entries": written},
            )
        )
    return documents


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check one RuntimeConfig document and plan it: raises ExtraInvalid naming the fields."""
    metadata = body["metadata"]
    service_slug, environment_slug = metadata["service"], metadata["environment"]
    problems: dict[str, str] = {}
    if not context.will_exist(CatalogKind.SERVICE, service_slug):
        problems["metadata.service"] = (
            f"Service/{service_slug} is neither in the files nor in the catalog"
        )
    if not context.will_exist(CatalogKind.ENVIRONMENT, environment_slug):
        problems["metadata.environment"] = (
            f"Environment/{environment_slug} is neither in the files nor in the catalog"
        )
    if problems:
        raise ExtraInvalid(problems)
    service = Service.objects.select_related("team").filter(slug=service_slug).first()
    environment = Environment.objects.filter(slug=environment_slug).first()
    latest = config.current(service, environment) if service and environment else None
    before = config.entries_of(latest)
    method = config.delivery_method(service) if service else Delivery.CLIENT
    after: dict[tuple[str, str], Any] = {}
    for name, raw in body["spec"]["entries"].items():
        path = f"spec.entries.{name}"
        kind = raw["kind"]
        key = name.removeprefix(f"{kind}:")
        if ":" in key:
            problems[path] = f"a key may only be prefixed with its own kind ({kind}:)"
            continue
        if (kind, key) in after:
            problems[path] = f"the {kind} key {key!r} is given twice"
            continue
        try:
            after[(kind, key)] = _value(kind, key, raw, path, method, context, before)
        except ExtraInvalid as exc:
            problems.update(exc.fields)
    if problems:
        raise ExtraInvalid(problems)
    changes = config.diff(before, after)
    fields = sorted(
        {
            f"spec.entries.{item['key']}"
            for section in ("added", "changed", "removed")
            for item in changes[section]
        }
    )
    if not fields:
        action = Action.UNCHANGED
    else:
        action = Action.UPDATED if latest is not None else Action.CREATED
    return Planned(
        name=f"{service_slug}/{environment_slug}",
        action=action,
        fields=fields,
        teams=[service.team] if service else [],
        service=service,
        value=(service_slug, environment_slug, after),
    )


def _value(
    kind: str,
    key: str,
    raw: dict[str, Any],
    path: str,
    method: str,
    context: Context,
    before: dict[tuple[str, str], Any],
) -> Any:
    references = [r for r in REFERENCES if r in raw]
    if kind != Kind.SECRET:
        if references:
            raise ExtraInvalid({f"{path}.{references[0]}": "only a secret is given by reference"})
        try:
            return config.clean_item({**raw, "key": key}, path, method).value
        except config.Invalid as exc:
            raise ExtraInvalid({f: "; ".join(m) for f, m in exc.fields.items()}) from None
    if "value" in raw:
        raise ExtraInvalid(
            {
                f"{path}.value": "a secret is never written in the file: "
                "use fromEnv: VARIABLE or fromFile: PATH"
            }
        )
    if len(references) != 1:
        raise ExtraInvalid({path: "a secret needs exactly one of fromEnv or fromFile"})
    reference = references[0]
    where = f"{path}.{reference}"
    if not context.resolve_secrets:
        if (kind, key) in before:
            return before[(kind, key)]  # kept as it is
        raise ExtraInvalid(
            {
                where: f"the secret {key!r} is not set yet, and a file sent to the API cannot "
                "read the server's environment or files: set it with manage.py catalog "
                "import or the runtime config API"
            }
        )
    if reference == "fromEnv":
        variable = raw["fromEnv"]
        secret = os.environ.get(variable)
        if not secret:
            raise ExtraInvalid(
                {where: f"the environment variable {variable} (secret {key!r}) is not set"}
            )
        return secret
    location = Path(raw["fromFile"]).expanduser()
    try:
        secret = location.read_text(encoding="utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtraInvalid(
            {where: f"cannot read the secret {key!r} from {location}: {exc}"}
        ) from None
    if not secret:
        raise ExtraInvalid({where: f"the file {location} (secret {key!r}) is empty"})
    return secret


def apply(planned: Planned, actor: Any) -> None:
    """Save the planned entries as the next version, as the API does (one audited event)."""
    service_slug, environment_slug, after = planned.value
    service = Service.objects.get(slug=service_slug)
    environment = Environment.objects.get(slug=environment_slug)
    config.change(
        service,
        environment,
        set_items=[config.Item(kind, key, value) for (kind, key), value in after.items()],
        replace=True,
        actor=actor,
        message=SOURCE,
    )


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label)
