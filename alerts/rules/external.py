"""The kind about external dependencies: a vendor we rely on in partial or major outage (by
its status page or our own probe of it), as published on the spine by health's poller."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.choices import (
    EXTERNAL_OUTAGE_STATES,
    EXTERNAL_RECOVERED_STATES,
    EXTERNAL_STATUS_CHANGED,
    RuleKind,
)
from alerts.incidents import clear_condition, raise_condition
from alerts.models import Incident, Rule
from alerts.rules.base import Kind, Subject
from catalog.models import ExternalDependency, Service
from controlplane.models import Event

EXTERNAL_SUBJECT = ExternalDependency._meta.label_lower
FIRING_STATES = ("degraded", *EXTERNAL_OUTAGE_STATES)


class ExternalStatus(Kind):
    """An incident per external dependency the team's services use, while its state is one
    of `states`; resolved when it is operational or degraded again (maintenance and unknown
    decide nothing). `dependencies` (slugs) narrows it; empty: every one the team uses.
    The incident belongs to the rule's team, so each team whose services use the vendor
    hears of it once, and their services' own alerts wait under it."""

    name = RuleKind.EXTERNAL_STATUS
    listens = (EXTERNAL_STATUS_CHANGED,)
    params = {"states": (list(EXTERNAL_OUTAGE_STATES), list), "dependencies": ([], list)}
    teamless = True
    follows_root = False

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        states = params["states"]
        if not states or not set(states) <= set(FIRING_STATES):
            errors["params.states"] = [f"choose from {', '.join(FIRING_STATES)}"]
        slugs = params["dependencies"]
        if not all(isinstance(s, str) for s in slugs):
            errors["params.dependencies"] = ["give external dependency slugs"]
        else:
            known = set(
                ExternalDependency.objects.filter(slug__in=slugs).values_list("slug", flat=True)
            )
            unknown = sorted(set(slugs) - known)
            if unknown:
                errors["params.dependencies"] = [f"no external dependency {', '.join(unknown)}"]
        return errors

    def concerns(self, rule: Rule, event: Event) -> bool:
        slug = str(event.payload.get("dependency") or "")
        wanted = self.param(rule, "dependencies")
        if not slug or (wanted and slug not in wanted):
            return False
        users = Service.objects.filter(external_dependencies__slug=slug)
        if rule.service_id is not None:
            return users.filter(pk=rule.service_id).exists()
        return users.filter(team_id=rule.team_id).exists()

    def on_event(self, rule: Rule, event: Event) -> None:
        self.apply(rule, str(event.payload.get("dependency") or ""))

    def recheck(self, rule: Rule, incident: Incident, now: datetime) -> None:
        slug = (
            ExternalDependency.objects.filter(pk=incident.subject_id)
            .values_list("slug", flat=True)
            .first()
        )
        if slug is None:  # the dependency was deleted: nothing left to be down
            clear_condition(rule, Subject.of_incident(incident), "external dependency deleted")
            return
        self.apply(rule, slug)

    def apply(self, rule: Rule, slug: str) -> None:
        dependency = ExternalDependency.objects.filter(slug=slug).first()
        if dependency is None:
            return
        # The newest report is the truth when deliveries race.
        latest = (
            Event.objects.filter(action=EXTERNAL_STATUS_CHANGED, payload__dependency=slug)
            .order_by("-id")
            .first()
        )
        if latest is None:
            return
        state = str(latest.payload.get("state") or "")
        subject = Subject(
            type=EXTERNAL_SUBJECT,
            id=str(dependency.pk),
            label=dependency.slug,
            service_id=None,
            environment_id=None,
        )
        if state in self.param(rule, "states"):
            raise_condition(
                rule,
                subject,
                title=f"{dependency.name or dependency.slug}: {state.replace('_', ' ')}",
                reason=_reason(latest.payload),
                since=latest.created_at,
            )
        elif state in EXTERNAL_RECOVERED_STATES:
            clear_condition(
                rule, subject, f"{dependency.slug} is {state}: {_reason(latest.payload)}"
            )


def _reason(payload: dict[str, Any]) -> str:
    parts = [str(payload.get("summary") or f"status {payload.get('state')}")]
    if payload.get("source"):
        parts.append(f"source: {payload['source']}")
    if payload.get("vendor_indicator"):
        parts.append(f"vendor indicator: {payload['vendor_indicator']}")
    if payload.get("our_probe"):
        parts.append(f"our probe: {payload['our_probe']}")
    return "; ".join(parts)
