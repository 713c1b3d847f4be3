"""Runtime config: validate a change, save it as the next version in one transaction with one
audited event (a diff that never shows a secret), revert to any earlier version, and tell
every web process's watchers that (service, environment) changed."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from catalog.models import Environment, Service
from controlplane import redis as redis_clients
from controlplane.crypto import mask
from controlplane.events import Actor, publish
from debugging.choices import LEVELS, PYTHON_LEVELS, ConfigEvent, Delivery, Kind
from debugging.models import ConfigEntry, ConfigVersion, DeliverySetting

logger = logging.getLogger(__name__)

# Logger names are dotted Python/Java identifiers ("payments.client", "root"); other keys
# also allow dashes. Both are what an environment variable or a YAML key can carry.
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,199}$")
CHANNEL_PREFIX = "signalbox:config:"
MAX_VALUE_BYTES = 64_000


class Invalid(Exception):
    """A change a user asked for cannot be saved: `fields` maps each bad field to reasons."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()))
        self.fields = fields


class Stale(Exception):
    """The change was made against a version that is no longer the current one."""


@dataclass(frozen=True)
class Item:
    """One key as a change names it: its kind, key and (plain) value."""

    kind: str
    key: str
    value: Any


def channel(service_id: int, environment_id: int) -> str:
    """The Redis pub/sub channel that says "(service, environment) changed"."""
    return f"{CHANNEL_PREFIX}{service_id}:{environment_id}"


def notify(service_id: int, environment_id: int) -> None:
    """Once the caller's transaction commits, wake every watcher of (service, environment).

    Best effort: a watcher that misses it still gets the change when its wait runs out."""

    def send() -> None:
        try:
            redis_clients.client().publish(channel(service_id, environment_id), b"1")
        except Exception:
            logger.exception(
                "could not announce config change of service %s env %s",
                service_id,
                environment_id,
            )

    transaction.on_commit(send)


def delivery_method(service: Service) -> str:
    found = DeliverySetting.objects.filter(service=service).values_list("method", flat=True)
    return found.first() or Delivery.CLIENT


def check_level(value: Any, method: str) -> str:
    """The level, upper-cased; raises ValueError naming what is allowed."""
    allowed = LEVELS if method == Delivery.ACTUATOR else PYTHON_LEVELS
    level = value.upper() if isinstance(value, str) else value
    if level not in allowed:
        extra = "" if method == Delivery.ACTUATOR else " (TRACE and OFF only for actuator services)"
        raise ValueError(f"unknown level {value!r}: use one of {', '.join(allowed)}{extra}")
    return str(level)


def clean_item(raw: Any, where: str, method: str) -> Item:
    """Validate one entry of a change; raises Invalid naming `where.<field>`."""
    if not isinstance(raw, Mapping):
        raise Invalid({where: ["must be an object with kind, key and value"]})
    kind, key = raw.get("kind"), raw.get("key")
    if kind not in Kind.values:
        raise Invalid({f"{where}.kind": [f"must be one of {', '.join(Kind.values)}"]})
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise Invalid(
            {
                f"{where}.key": [
                    "bad key name: letters, digits, '_', '.', '-', starting with a letter or '_', "
                    "at most 200 characters"
                ]
            }
        )
    if "value" not in raw:
        raise Invalid({f"{where}.value": ["required"]})
    try:
        value = _clean_value(kind, raw["value"], method)
    except ValueError as exc:
        raise Invalid({f"{where}.value": [str(exc)]}) from None
    return Item(kind, key, value)


def _clean_value(kind: str, value: Any, method: str) -> Any:
    if kind == Kind.LOG_LEVEL:
        return check_level(value, method)
    if kind == Kind.FLAG:
        if not isinstance(value, bool):
            raise ValueError("a flag must be true or false")
        return value
    if kind == Kind.ENDPOINT:
        # Signalbox never calls these (the service does), so a valid URL is enough.
        try:
            URLValidator(schemes=["http", "https", "grpc", "tcp"])(value)
        except ValidationError:
            raise ValueError("must be a URL (http, https, grpc or tcp)") from None
        return value
    if kind == Kind.SECRET:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        return value
    if len(json.dumps(value)) > MAX_VALUE_BYTES:
        raise ValueError(f"at most {MAX_VALUE_BYTES} bytes of JSON")
    return value


def current(service: Service, environment: Environment) -> ConfigVersion | None:
    return (
        ConfigVersion.objects.filter(service=service, environment=environment)
        .order_by("-number")
        .first()
    )


def entries_of(version: ConfigVersion | None) -> dict[tuple[str, str], Any]:
    """{(kind, key): plain value} of a version (secrets decrypted: callers must not show them)."""
    if version is None:
        return {}
    return {
        (e.kind, e.key): (e.secret if e.kind == Kind.SECRET else e.value)
        for e in version.entries.all()
    }


def diff(
    before: Mapping[tuple[str, str], Any], after: Mapping[tuple[str, str], Any]
) -> dict[str, list[dict[str, Any]]]:
    """Added, changed and removed keys; a secret's values never appear, only that it changed."""

    def shown(kind: str, value: Any) -> Any:
        return "(secret)" if kind == Kind.SECRET else value

    added = [
        {"kind": k, "key": key, "value": shown(k, v)}
        for (k, key), v in sorted(after.items())
        if (k, key) not in before
    ]
    removed = [
        {"kind": k, "key": key, "value": shown(k, v)}
        for (k, key), v in sorted(before.items())
        if (k, key) not in after
    ]
    changed = []
    for (k, key), v in sorted(after.items()):
        if (k, key) in before and before[(k, key)] != v:
            if k == Kind.SECRET:
                changed.append({"kind": k, "key": key, "change": "changed"})
            else:
                changed.append({"kind": k, "key": key, "before": before[(k, key)], "after": v})
    return {"added": added, "changed": changed, "removed": removed}


def change(
    service: Service,
    environment: Environment,
    *,
    set_items: Iterable[Item] = (),
    remove: Iterable[tuple[str, str]] = (),
    replace: bool = False,
    message: str = "",
    expected_version: int | None = None,
    actor: Actor = None,
    reverted_to: int | None = None,
) -> ConfigVersion | None:
    """Save the next version: the current entries (none if `replace`), `set_items` set and
    `remove` removed. Returns the new version, or None when nothing changed (and nothing is
    published). Raises Invalid for removing an unknown key, Stale if `expected_version` is
    no longer the current one."""
    with transaction.atomic():
        # One writer per service at a time: version numbers are handed out under this lock.
        Service.objects.select_for_update().filter(pk=service.pk).first()
        latest = current(service, environment)
        number = latest.number if latest else 0
        if expected_version is not None and expected_version != number:
            raise Stale(f"the config is at version {number}, not {expected_version}; reload")
        before = entries_of(latest)
        after = {} if replace else dict(before)
        for item in set_items:
            after[(item.kind, item.key)] = item.value
        for i, pair in enumerate(remove):
            if pair not in after:
                raise Invalid({f"remove.{i}": [f"no {pair[0]} key {pair[1]!r} to remove"]})
            del after[pair]
        changes = diff(before, after)
        if not any(changes.values()):
            return None
        version = ConfigVersion.objects.create(
            service=service,
            environment=environment,
            number=number + 1,
            actor_label=actor_label(actor),
            message=message[:300],
            reverted_to=reverted_to,
        )
        ConfigEntry.objects.bulk_create(
            ConfigEntry(
                version=version,
                kind=kind,
                key=key,
                value=None if kind == Kind.SECRET else value,
                secret=value if kind == Kind.SECRET else "",
            )
            for (kind, key), value in sorted(after.items())
        )
        what = f"reverted to v{reverted_to}" if reverted_to else "changed"
        publish(
            ConfigEvent.REVERTED if reverted_to else ConfigEvent.CHANGED,
            actor=actor,
            subject=version,
            environment=environment,
            message=f"runtime config of {service.slug} in {environment.slug} {what} "
            f"(v{number} → v{version.number})",
            payload={
                "version": version.number,
                "previous": number,
                "diff": changes,
                "message": message[:300],
            },
        )
        notify(service.pk, environment.pk)
    return version


def revert(
    service: Service, environment: Environment, to: int, *, actor: Actor = None
) -> ConfigVersion | None:
    """A new version equal to version `to` (history is never rewritten); None if it already is."""
    target = ConfigVersion.objects.filter(
        service=service, environment=environment, number=to
    ).first()
    if target is None:
        raise Invalid({"version": [f"no version {to} of this config"]})
    items = [Item(k, key, v) for (k, key), v in entries_of(target).items()]
    return change(
        service,
        environment,
        set_items=items,
        replace=True,
        actor=actor,
        reverted_to=to,
        message=f"revert to v{to}",
    )


def shown_entry(entry: ConfigEntry) -> dict[str, Any]:
    """An entry as the API and pages show it: a secret only as "set, ••••abcd" and a hash."""
    if entry.kind != Kind.SECRET:
        return {"kind": entry.kind, "key": entry.key, "value": entry.value}
    digest = hashlib.sha256(entry.secret.encode()).hexdigest()[:8]
    return {
        "kind": entry.kind,
        "key": entry.key,
        "value": None,
        "secret": {"set": True, "masked": mask(entry.secret), "sha256_prefix": digest},
    }


def document(version: ConfigVersion | None) -> dict[str, Any]:
    """What instances get: log levels, flags, endpoints, values and (decrypted) secrets."""
    sections: dict[str, dict[str, Any]] = {
        "log_levels": {},
        "flags": {},
        "endpoints": {},
        "values": {},
        "secrets": {},
    }
    name = {
        Kind.LOG_LEVEL: "log_levels",
        Kind.FLAG: "flags",
        Kind.ENDPOINT: "endpoints",
        Kind.VALUE: "values",
        Kind.SECRET: "secrets",
    }
    for (kind, key), value in entries_of(version).items():
        sections[name[Kind(kind)]][key] = value
    return {"version": version.number if version else 0, **sections}


def actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    label = getattr(actor, "label", None)
    if callable(label):
        return str(label())
    if hasattr(actor, "get_username"):
        return str(actor.get_username())
    return str(actor)
