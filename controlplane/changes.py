"""Changes to a resource, each one an audited event: the one write path of API and pages.

The API's `PublishingViewSet` and the dashboard's forms both validate with the resource's
serializer and save through `create`, `update` and `delete` here, so a change made in the
browser writes the same row and the same event (name, actor, payload) as the same change
through the API, in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError, RestrictedError
from rest_framework.serializers import BaseSerializer

from controlplane.events import Actor, ResourceEvents, publish

# How many of the objects still using something a delete names (the rest are counted).
IN_USE_NAMED = 5


class Conflict(Exception):
    """The change clashes with the current state: the API answers 409, a page says why."""


def changes_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{field: [before, after]} for every field whose representation changed."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def create(
    serializer: BaseSerializer[Any],
    *,
    actor: Actor,
    events: ResourceEvents,
    conflict: str = "it already exists",
    **extra: Any,
) -> Model:
    """Save a new object from a validated serializer and publish `events.created`.

    A unique constraint that only the database can see (a race with another request)
    raises Conflict with `conflict` instead of a 500."""
    try:
        with transaction.atomic():
            obj: Model = serializer.save(**extra)
            _publish(events.created, "created", events, obj, actor, {"fields": serializer.data})
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
    return obj


def update(
    serializer: BaseSerializer[Any],
    *,
    actor: Actor,
    events: ResourceEvents,
    conflict: str = "it already exists",
) -> Model:
    """Save a validated serializer's changes and publish `events.updated` with the fields
    that changed, before and after; a change that changes nothing publishes nothing."""
    before = serializer.to_representation(serializer.instance)
    try:
        with transaction.atomic():
            obj: Model = serializer.save()
            changed = changes_between(before, serializer.to_representation(obj))
            if changed:
                _publish(events.updated, "updated", events, obj, actor, {"changes": changed})
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
    return obj


def delete(instance: Model, *, actor: Actor, events: ResourceEvents) -> None:
    """Delete and publish `events.deleted`; something still in use raises Conflict naming
    what uses it, and nothing is deleted or published."""
    with transaction.atomic():
        _publish(events.deleted, "deleted", events, instance, actor, {})
        try:
            with transaction.atomic():
                instance.delete()
        except (ProtectedError, RestrictedError) as exc:
            users = (
                exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
            )
            names = sorted(str(o) for o in users)
            more = f" and {len(names) - IN_USE_NAMED} more" if len(names) > IN_USE_NAMED else ""
            raise Conflict(
                f"{instance} is still in use by {', '.join(names[:IN_USE_NAMED])}{more}; "
                "remove or move those first"
            ) from exc


def _publish(
    action: str,
    verb: str,
    events: ResourceEvents,
    obj: Model,
    actor: Actor,
    payload: dict[str, Any],
) -> None:
    message = f"{events.noun} {obj} {verb}"
    publish(action, actor=actor, subject=obj, message=message, payload=payload)
