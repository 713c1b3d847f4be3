"""Kinds about things that happened rather than states: rollouts that ended badly, flapping."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from alerts.choices import OPEN_STATES, RuleKind
from alerts.incidents import clear_condition, raise_condition, resolve
from alerts.models import Incident, Rule
from alerts.rules.base import Kind, Subject, at_least
from controlplane.models import Event
from deployments.choices import RolloutEvent
from health.choices import HealthEvent

OUTCOMES = ("rolled_back", "failed")


class RolloutOutcome(Kind):
    """Each rollout that rolled back (or failed) is an incident, resolved by a later success of
    the same service and environment."""

    name = RuleKind.ROLLOUT_OUTCOME
    listens = (RolloutEvent.ROLLED_BACK, RolloutEvent.FAILED, RolloutEvent.SUCCEEDED)
    params = {"outcomes": (["rolled_back"], list)}
    honours_maintenance = False
    follows_root = False

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        if not params["outcomes"] or not set(params["outcomes"]) <= set(OUTCOMES):
            return {"params.outcomes": [f"choose from {', '.join(OUTCOMES)}"]}
        return {}

    def on_event(self, rule: Rule, event: Event) -> None:
        outcome = event.action.removeprefix(RolloutEvent.FAMILY)
        if outcome == "succeeded":
            self._resolve_earlier(rule, event)
            return
        if outcome not in self.param(rule, "outcomes"):
            return
        service = event.service.slug if event.service else "?"
        where = f" in {event.environment.slug}" if event.environment else ""
        words = outcome.replace("_", " ")
        raise_condition(
            rule,
            Subject.of_event(event),
            title=f"{service} rollout {words}{where}",
            reason=str(event.payload.get("reason") or event.message or f"rollout {words}"),
            since=event.created_at,
        )

    def _resolve_earlier(self, rule: Rule, event: Event) -> None:
        earlier = Incident.objects.filter(
            rule=rule,
            state__in=OPEN_STATES,
            service=event.service,
            environment=event.environment,
        )
        for incident in earlier:
            resolve(incident, None, f"a later rollout succeeded ({event.subject_label})")


class InstanceFlapping(Kind):
    """N health changes of one instance within a window; resolves once the window is calm."""

    name = RuleKind.INSTANCE_FLAPPING
    listens = (HealthEvent.INSTANCE_CHANGED,)
    params = {"transitions": (6, int), "window_seconds": (900, int)}

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        return {**at_least(params, 2, "transitions"), **at_least(params, 10, "window_seconds")}

    def changes(self, rule: Rule, subject: Subject, now: datetime) -> int:
        since = now - timedelta(seconds=self.param(rule, "window_seconds"))
        return Event.objects.filter(
            action=self.listens[0],
            subject_type=subject.type,
            subject_id=subject.id,
            created_at__gte=since,
        ).count()

    def on_event(self, rule: Rule, event: Event) -> None:
        self.apply(rule, Subject.of_event(event), timezone.now())

    def recheck(self, rule: Rule, incident: Incident, now: datetime) -> None:
        self.apply(rule, Subject.of_incident(incident), now)

    def apply(self, rule: Rule, subject: Subject, now: datetime) -> None:
        count = self.changes(rule, subject, now)
        minutes = self.param(rule, "window_seconds") // 60
        if count >= self.param(rule, "transitions"):
            raise_condition(
                rule,
                subject,
                title=f"{subject.label} is flapping",
                reason=f"{count} health changes in the last {minutes} min",
            )
        else:
            clear_condition(rule, subject, f"{count} health changes in the last {minutes} min")
