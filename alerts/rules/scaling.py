"""Kinds about autoscaling: a group that keeps scaling ("if your service has scaled 7 times in
the past hour, you might have a memory leak"), with the leak-or-load verdict in the alert."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from alerts.choices import RuleKind
from alerts.incidents import clear_condition, raise_condition
from alerts.models import Incident, Rule
from alerts.rules.base import Kind, Subject, at_least
from controlplane.models import Event
from scaling import leaks
from scaling.choices import ScalingEvent
from scaling.models import ScalingGroup

GROUP_SUBJECT = ScalingGroup._meta.label_lower


class ScalingChurn(Kind):
    """A group whose count changed `changes` times within the window (by autoscaling; counts
    set by hand are not churn). Resolves once the window is calm."""

    name = RuleKind.SCALING_CHURN
    listens = (ScalingEvent.DECIDED,)
    params = {"changes": (7, int), "window_seconds": (3600, int)}
    follows_root = False

    def check(self, params: dict[str, Any]) -> dict[str, list[str]]:
        return {**at_least(params, 2, "changes"), **at_least(params, 60, "window_seconds")}

    def count(self, rule: Rule, subject: Subject, now: datetime) -> int:
        since = now - timedelta(seconds=self.param(rule, "window_seconds"))
        payloads = Event.objects.filter(
            action=ScalingEvent.DECIDED,
            subject_type=subject.type,
            subject_id=subject.id,
            created_at__gte=since,
        ).values_list("payload", flat=True)
        # (in Python: excluding a JSON key would drop the rows that lack it as well)
        return sum(1 for payload in payloads if not (payload or {}).get("manual"))

    def on_event(self, rule: Rule, event: Event) -> None:
        if event.subject_type == GROUP_SUBJECT:
            self.apply(rule, Subject.of_event(event), timezone.now())

    def recheck(self, rule: Rule, incident: Incident, now: datetime) -> None:
        self.apply(rule, Subject.of_incident(incident), now)

    def apply(self, rule: Rule, subject: Subject, now: datetime) -> None:
        count = self.count(rule, subject, now)
        window = _window_words(self.param(rule, "window_seconds"))
        if count < self.param(rule, "changes"):
            clear_condition(rule, subject, f"{count} scaling change(s) in the last {window}")
            return
        group = (
            ScalingGroup.objects.filter(pk=subject.id)
            .select_related("service", "environment")
            .first()
        )
        found = leaks.verdict(group, now) if group is not None else None
        reason = f"scaled {count} times in the last {window}"
        if found is not None:
            reason += f". {found.text[0].upper()}{found.text[1:]}"
            if found.leak and group is not None:
                reason += (
                    f" (the Rolling restart button, `/signalbox scale "
                    f"{group.service.slug} {group.environment.slug} restart` in Slack, or "
                    f"`signalbox scale restart {group.service.slug} "
                    f"{group.environment.slug}`)"
                )
        raise_condition(
            rule,
            subject,
            title=f"{subject.label} scaled {count} times in the last {window}",
            reason=reason,
        )


def _window_words(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{seconds // 60} min"
