"""What every rule kind is: which events it reads, its parameters, and how it decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from django.core.exceptions import ValidationError

from alerts.models import Incident, Rule
from controlplane.models import Event


@dataclass(frozen=True)
class Subject:
    """What an incident is about: one row somewhere (a service in an env, an instance, ...)."""

    type: str
    id: str
    label: str
    service_id: int | None
    environment_id: int | None

    @classmethod
    def of_event(cls, event: Event) -> Subject:
        label = event.subject_label
        if event.subject_type == "catalog.service" and event.environment is not None:
            label = f"{label} in {event.environment.slug}"
        return cls(
            type=event.subject_type,
            id=event.subject_id,
            label=label,
            service_id=event.service_id,
            environment_id=event.environment_id,
        )

    @classmethod
    def of_incident(cls, incident: Incident) -> Subject:
        return cls(
            type=incident.subject_type,
            id=incident.subject_id,
            label=incident.subject_label,
            service_id=incident.service_id,
            environment_id=incident.environment_id,
        )


class Kind:
    """A rule kind. Subclasses read events (`on_event`) and/or the clock (`sweep`)."""

    name: ClassVar[str]
    listens: ClassVar[tuple[str, ...]] = ()
    # Parameter name -> (default, type); `clean_params` fills and checks them.
    params: ClassVar[dict[str, tuple[Any, type]]] = {}
    # Rollbacks and failures are news whatever maintenance is going on.
    honours_maintenance: ClassVar[bool] = True
    # Whether an incident may wait under the incident of a dependency that is down (its
    # root); rollouts and scaling are news of their own whatever else is failing.
    follows_root: ClassVar[bool] = True
    # Events about things no team owns (an external dependency): every team's rules of
    # this kind hear them, and `concerns` picks the ones it is about.
    teamless: ClassVar[bool] = False

    def clean_params(self, raw: dict[str, Any], severity: str = "") -> dict[str, Any]:
        """Defaults filled in; raises ValidationError naming each bad parameter."""
        unknown = sorted(set(raw) - set(self.params))
        errors: dict[str, list[str]] = {
            f"params.{name}": [f"unknown parameter; allowed: {', '.join(sorted(self.params))}"]
            for name in unknown
        }
        cleaned: dict[str, Any] = {}
        for name, (default, typ) in self.params.items():
            value = raw.get(name, default)
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
                errors[f"params.{name}"] = [f"must be a {typ.__name__}"]
                continue
            cleaned[name] = value
        if not errors:
            errors.update(self.check(cleaned))
        if errors:
            raise ValidationError(errors)
        return cleaned

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        """Kind-specific checks beyond types; returns {field: [reasons]}."""
        return {}

    def concerns(self, rule: Rule, event: Event) -> bool:
        """Whether the event is about something in the rule's scope."""
        return rule.in_scope(event.service_id, event.environment)

    def param(self, rule: Rule, name: str) -> Any:
        return rule.params.get(name, self.params[name][0])

    def on_event(self, rule: Rule, event: Event) -> None:
        """React to one of the events this kind listens to."""

    def recheck(self, rule: Rule, incident: Incident, now: datetime) -> None:
        """Level-triggered: is an open incident's condition still true? Fire or clear it."""

    def sweep(self, rule: Rule, now: datetime) -> None:
        """Kinds that read state on a clock (SLO burn) evaluate here."""


def at_least(params: dict[str, Any], minimum: float, *names: str) -> dict[str, list[str]]:
    return {f"params.{n}": [f"must be {minimum} or more"] for n in names if params[n] < minimum}


def latest_event(actions: tuple[str, ...], subject: Subject) -> Event | None:
    """The newest of these events about the subject: the truth when deliveries race."""
    events = Event.objects.filter(
        action__in=actions, subject_type=subject.type, subject_id=subject.id
    )
    if subject.environment_id is not None:
        events = events.filter(environment_id=subject.environment_id)
    return events.order_by("-id").first()
