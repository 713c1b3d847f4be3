"""The spine: `publish()` records an event and, only once it commits, shows and hands it on.

Event names are a contract between the app that publishes them and every consumer (live
renderers, alert rules, the audit log's filters): each app declares its names once, in an
`EventNames` class in its `choices.py`, and publishers and consumers alike use those
attributes, never the bare strings (controlplane/tests/test_event_contract.py checks it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models, transaction

from controlplane.models import Event

logger = logging.getLogger(__name__)

Actor = Any  # a User, an ApiToken, an `Access`, a string naming a system actor, or None

_declared: dict[str, type[EventNames]] = {}


class EventNames:
    """An app's event names. Subclasses set `FAMILY` (the prefix every one of their names
    starts with, e.g. "rollout.") and declare each event as an UPPER_CASE attribute; the
    names are registered when the class is defined, so the audit log and admin can list
    every family and a name cannot be declared twice."""

    FAMILY: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        family = cls.__dict__.get("FAMILY", "")
        if not family.endswith("."):
            raise TypeError(f"{cls.__name__}.FAMILY must end with '.', e.g. 'rollout.'")
        for attr, value in cls.__dict__.items():
            if not attr.isupper() or attr == "FAMILY":
                continue
            if not isinstance(value, str) or not value.startswith(family):
                raise TypeError(f"{cls.__name__}.{attr} must be a name starting with {family!r}")
            if value in _declared and _declared[value] is not cls:
                raise TypeError(f"{value!r} is declared by {_declared[value].__name__} already")
            _declared[value] = cls

    @classmethod
    def names(cls) -> list[str]:
        return [v for k, v in vars(cls).items() if k.isupper() and k != "FAMILY"]

    @classmethod
    def resource(cls, noun: str) -> ResourceEvents:
        """The created/updated/deleted events of a resource, for `controlplane.changes`."""
        return ResourceEvents(
            noun=noun,
            created=getattr(cls, "CREATED"),  # noqa: B009 (subclasses declare it)
            updated=getattr(cls, "UPDATED"),  # noqa: B009
            deleted=getattr(cls, "DELETED"),  # noqa: B009
        )


@dataclass(frozen=True)
class ResourceEvents:
    """The events a resource's changes publish, and how its messages name it."""

    noun: str  # "alert rule": messages read "alert rule <name> created"
    created: str
    updated: str
    deleted: str


def declared_names() -> set[str]:
    """Every event name an installed app declares."""
    return set(_declared)


def families() -> list[str]:
    """Every declared family ("rollout.", ...), in the order the apps declared them."""
    return list(dict.fromkeys(cls.FAMILY for cls in _declared.values()))


def publish(
    action: str,
    *,
    actor: Actor = None,
    subject: models.Model | None = None,
    team: Any = None,
    service: Any = None,
    environment: Any = None,
    message: str = "",
    payload: dict[str, Any] | None = None,
) -> Event:
    """Record `action` in the caller's transaction; push it live and to alerting on commit.

    Team, service and environment default from the subject when it has them, so callers
    only pass what the subject cannot tell.
    """
    service = service if service is not None else _attr(subject, "service")
    if service is None and _is_model(subject, "catalog", "service"):
        service = subject
    environment = environment if environment is not None else _attr(subject, "environment")
    if team is None:
        team = service.team if service is not None else _attr(subject, "team")
    if team is None and _is_model(subject, "catalog", "team"):
        team = subject
    user, token, label = _actor_parts(actor)
    event = Event.objects.create(
        action=action,
        actor_user=user,
        actor_token=token,
        actor_label=label,
        subject_type=subject._meta.label_lower if subject is not None else "",
        subject_id=str(subject.pk) if subject is not None else "",
        subject_label=str(subject)[:300] if subject is not None else "",
        team=team,
        service=service,
        environment=environment,
        message=message[:500],
        payload=payload or {},
    )
    transaction.on_commit(lambda: _after_commit(event))
    return event


def _after_commit(event: Event) -> None:
    # Imported here: live rendering loads templates and the channel layer, which the
    # spine's callers (migrations, management commands) should not pay for at import.
    from controlplane import live

    try:
        # The row as created, with the team, service and environment it was given: loading
        # it again with select_related cost more than everything else the spine does.
        live.broadcast(event)
    except Exception:  # the live view is best-effort; the row and alerting are not
        logger.exception("live push failed for event %s", event.pk)
    hand_off(event.pk)


def hand_off(event_id: int) -> None:
    """Give the committed event to each consumer task (alert evaluation, once it exists)."""
    if not settings.SIGNALBOX_EVENT_CONSUMERS:
        return
    from controlplane.celery import app

    for task_name in settings.SIGNALBOX_EVENT_CONSUMERS:
        try:
            app.send_task(task_name, args=[event_id])
        except Exception:
            # The event row stays; a consumer's own sweep (by id > last seen) catches up.
            logger.exception("could not hand event %s to %s", event_id, task_name)


def _attr(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _is_model(obj: Any, app_label: str, model_name: str) -> bool:
    meta = getattr(obj, "_meta", None)
    return meta is not None and meta.app_label == app_label and meta.model_name == model_name


def _actor_parts(actor: Actor) -> tuple[Any, Any, str]:
    """(user, token, label) for whatever kind of actor the caller has."""
    if actor is None:
        return None, None, "system"
    if isinstance(actor, str):
        return None, None, actor
    if hasattr(actor, "token") and hasattr(actor, "user"):  # an Access
        if actor.token is not None:
            return None, actor.token, actor.label()
        actor = actor.user
    if isinstance(actor, AnonymousUser):
        return None, None, "anonymous"
    if isinstance(actor, AbstractBaseUser):
        return actor, None, actor.get_username()
    if _is_model(actor, "catalog", "apitoken"):
        return None, actor, f"token:{actor.team.slug}/{actor.name}"
    raise TypeError(f"publish() cannot record an actor of type {type(actor).__name__}")
