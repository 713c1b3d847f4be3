"""Kinds for a state held for a duration: a service down, a circuit open, a rollout paused,
a heartbeat late. Each reads the latest event about its subject, so racing deliveries of
old events cannot undo newer ones."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from alerts.choices import RuleKind
from alerts.incidents import clear_condition, raise_condition
from alerts.models import Incident, Rule
from alerts.rules.base import Kind, Subject, at_least, latest_event
from circuits.choices import CircuitEvent
from controlplane.models import Event
from deployments.choices import RolloutEvent
from health.choices import HealthEvent, HeartbeatEvent

SERVICE_STATES = ("down", "degraded", "unknown")


class HeldState(Kind):
    """The latest event says the condition holds (raise, fire after `for_seconds`) or not."""

    hold_param: ClassVar[str | None] = "for_seconds"

    def holds(self, rule: Rule, event: Event) -> bool | None:
        """True: the condition holds; False: it cleared; None: this event changes nothing."""
        raise NotImplementedError

    def title(self, subject: Subject, event: Event) -> str:
        raise NotImplementedError

    def reason(self, event: Event) -> str:
        return str(event.payload.get("reason") or event.message or event.action)

    def on_event(self, rule: Rule, event: Event) -> None:
        self.apply(rule, Subject.of_event(event))

    def recheck(self, rule: Rule, incident: Incident, now: datetime) -> None:
        self.apply(rule, Subject.of_incident(incident))

    def apply(self, rule: Rule, subject: Subject) -> None:
        latest = latest_event(self.listens, subject)
        if latest is None:
            return
        holds = self.holds(rule, latest)
        if holds is True:
            hold = self.param(rule, self.hold_param) if self.hold_param else 0
            raise_condition(
                rule,
                subject,
                title=self.title(subject, latest),
                reason=self.reason(latest),
                since=self.since(subject, latest),
                hold_seconds=hold,
                in_maintenance=bool(latest.payload.get("in_maintenance", False)),
            )
        elif holds is False:
            clear_condition(rule, subject, f"cleared: {self.reason(latest)}")

    def since(self, subject: Subject, latest: Event) -> datetime:
        return latest.created_at


class ServiceState(HeldState):
    name = RuleKind.SERVICE_STATE
    listens = (HealthEvent.SERVICE_CHANGED,)
    params = {"states": (["down"], list), "for_seconds": (120, int)}

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        errors = at_least(params, 0, "for_seconds")
        states = params["states"]
        if not states or not set(states) <= set(SERVICE_STATES):
            errors["params.states"] = [f"choose from {', '.join(SERVICE_STATES)}"]
        return errors

    def holds(self, rule: Rule, event: Event) -> bool | None:
        return event.payload.get("to") in self.param(rule, "states")

    def title(self, subject: Subject, event: Event) -> str:
        return f"{subject.label} is {event.payload.get('to')}"


class CircuitOpen(HeldState):
    name = RuleKind.CIRCUIT_OPEN
    listens = (CircuitEvent.OPENED, CircuitEvent.HALF_OPENED, CircuitEvent.CLOSED)
    params = {"for_seconds": (300, int)}

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        return at_least(params, 0, "for_seconds")

    def holds(self, rule: Rule, event: Event) -> bool | None:
        # Half-open is a probe, not a recovery: keep the clock running, decide nothing.
        return {CircuitEvent.OPENED: True, CircuitEvent.CLOSED: False}.get(event.action)

    def title(self, subject: Subject, event: Event) -> str:
        return f"circuit {subject.label} is open"


class Heartbeat(HeldState):
    name = RuleKind.HEARTBEAT
    listens = (HeartbeatEvent.LATE, HeartbeatEvent.FAILED, HeartbeatEvent.RECOVERED)
    params = {"on": (["late", "failed"], list)}
    hold_param = None

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        if not params["on"] or not set(params["on"]) <= {"late", "failed"}:
            return {"params.on": ["choose from late, failed"]}
        return {}

    def holds(self, rule: Rule, event: Event) -> bool | None:
        what = event.action.removeprefix(HeartbeatEvent.FAMILY)
        if what == "recovered":
            return False
        return True if what in self.param(rule, "on") else None

    def title(self, subject: Subject, event: Event) -> str:
        return f"heartbeat {subject.label} is {event.action.removeprefix(HeartbeatEvent.FAMILY)}"


class RolloutStuck(HeldState):
    name = RuleKind.ROLLOUT_STUCK
    listens = (
        RolloutEvent.PAUSED,
        RolloutEvent.DRIVER_ERROR,
        RolloutEvent.STEP_STARTED,
        RolloutEvent.RESUMED,
        RolloutEvent.PROMOTED,
        RolloutEvent.SUCCEEDED,
        RolloutEvent.ROLLED_BACK,
        RolloutEvent.FAILED,
        RolloutEvent.ABORTED,
    )
    params = {"for_seconds": (1800, int)}
    follows_root = False

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        return at_least(params, 0, "for_seconds")

    def holds(self, rule: Rule, event: Event) -> bool | None:
        return event.action in (RolloutEvent.PAUSED, RolloutEvent.DRIVER_ERROR)

    def title(self, subject: Subject, event: Event) -> str:
        why = event.action.removeprefix(RolloutEvent.FAMILY)
        return f"rollout {subject.label} is stuck ({why})"
