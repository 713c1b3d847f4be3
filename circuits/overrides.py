"""Operators force circuits open or closed; services poll the standing overrides with an ETag."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import Environment, Service
from catalog.permissions import Access
from circuits.choices import CircuitEvent
from circuits.models import CircuitOverride
from controlplane.events import publish


def actor_label(actor: Any) -> str:
    if isinstance(actor, Access):
        return actor.label()
    if isinstance(actor, str):
        return actor
    return str(actor.get_username()) if getattr(actor, "is_authenticated", False) else "system"


def _user_of(actor: Any) -> Any:
    user = actor.user if isinstance(actor, Access) else actor
    return user if getattr(user, "is_authenticated", False) else None


def set_override(
    *,
    service: Service,
    circuit_name: str,
    environment: Environment | None,
    state: str,
    reason: str,
    expires_at: datetime,
    actor: Any,
) -> CircuitOverride:
    """Force a circuit; an override already standing for the same circuit and place is replaced."""
    label = actor_label(actor)
    with transaction.atomic():
        standing = (
            CircuitOverride.objects.select_for_update(of=("self",))
            .select_related("service", "environment")
            .filter(
                service=service,
                circuit_name=circuit_name,
                environment=environment,
                cleared_at__isnull=True,
            )
            .first()
        )
        if standing is not None:
            _clear(standing, actor=actor, why="replaced by a new override")
        override = CircuitOverride.objects.create(
            service=service,
            circuit_name=circuit_name,
            environment=environment,
            state=state,
            reason=reason,
            expires_at=expires_at,
            created_by=_user_of(actor),
            created_by_label=label,
        )
        where = environment.slug if environment is not None else "every environment"
        publish(
            CircuitEvent.OVERRIDE_SET,
            actor=actor,
            subject=override,
            environment=environment,
            message=f"{circuit_name} {override.get_state_display().lower()} in {where} "
            f"until {expires_at:%Y-%m-%d %H:%M} UTC: {reason}",
            payload=_payload(override),
        )
    return override


def clear_override(override: CircuitOverride, *, actor: Any, why: str = "cleared") -> bool:
    """Lift an override; False if it was already lifted (someone else got there first)."""
    with transaction.atomic():
        locked = (
            CircuitOverride.objects.select_for_update(of=("self",))
            .select_related("service", "environment")
            .filter(pk=override.pk, cleared_at__isnull=True)
            .first()
        )
        if locked is None:
            return False
        _clear(locked, actor=actor, why=why)
    return True


def _clear(override: CircuitOverride, *, actor: Any, why: str) -> None:
    override.cleared_at = timezone.now()
    override.cleared_by_label = actor_label(actor)
    override.save(update_fields=["cleared_at", "cleared_by_label"])
    publish(
        CircuitEvent.OVERRIDE_CLEARED,
        actor=actor,
        subject=override,
        environment=override.environment,
        message=f"{override.circuit_name} no longer {override.get_state_display().lower()}: {why}",
        payload={**_payload(override), "why": why},
    )


def expire_overrides(limit: int = 500) -> int:
    """Lift overrides past their expiry, each once, however many workers run this."""
    cleared = 0
    with transaction.atomic():
        due = (
            CircuitOverride.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("service", "service__team", "environment")
            .filter(cleared_at__isnull=True, expires_at__lte=timezone.now())
            .order_by("expires_at")[:limit]
        )
        for override in due:
            _clear(override, actor="system", why="expired")
            cleared += 1
    return cleared


def standing(service: Service, environment: Environment | None) -> list[CircuitOverride]:
    """Active overrides a service must obey (in one environment, or everywhere), stable order."""
    return list(
        CircuitOverride.objects.active()
        .applying_to(service, environment)
        .select_related("environment")
        .order_by("circuit_name", "environment_id", "id")
    )


def as_document(override: CircuitOverride) -> dict[str, Any]:
    """An override as the API and the client library see it."""
    return {
        "id": override.pk,
        "circuit": override.circuit_name,
        "environment": override.environment.slug if override.environment is not None else None,
        "state": override.state,
        "reason": override.reason,
        "expires_at": override.expires_at.isoformat(),
        "created_by": override.created_by_label,
        "created_at": override.created_at.isoformat(),
    }


def etag(documents: list[dict[str, Any]]) -> str:
    """A strong ETag of exactly what the poller would receive."""
    digest = hashlib.sha256(json.dumps(documents, sort_keys=True).encode()).hexdigest()
    return f'"{digest[:32]}"'


def _payload(override: CircuitOverride) -> dict[str, Any]:
    return {
        "override": override.pk,
        "circuit": override.circuit_name,
        "state": override.state,
        "environment": override.environment.slug if override.environment is not None else None,
        "reason": override.reason,
        "expires_at": override.expires_at.isoformat(),
    }
