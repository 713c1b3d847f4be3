"""Why a trigger would not be sent now: a silence that matches, or a maintenance window."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from alerts.choices import MATCHER_LABELS, MatchOp, SilenceEvent
from alerts.models import Incident, Silence
from catalog.models import Team
from catalog.permissions import Access
from controlplane.events import publish

MAX_MATCHERS = 20


def suppression_for(incident: Incident) -> str:
    """ "" when the incident may notify; else what stops it ("silence 4", "maintenance")."""
    from alerts import dependencies
    from alerts.rules import kind_of

    held = dependencies.suppression(incident)
    if held:
        return held
    if kind_of(incident.rule).honours_maintenance and (
        incident.in_maintenance or _maintenance_now(incident)
    ):
        return "maintenance"
    labels = incident.labels()
    for silence in Silence.objects.active(timezone.now()).filter(team_id=incident.team_id):
        if silence.matches(labels):
            return f"silence {silence.pk}"
    return ""


def open_silence(
    *,
    team: Team,
    matchers: list[dict[str, str]],
    ends_at: datetime,
    comment: str,
    actor: Access,
    starts_at: datetime | None = None,
) -> Silence:
    """Create a silence and its audit event (the API's and the silences page's one way)."""
    with transaction.atomic():
        silence = Silence.objects.create(
            team=team,
            matchers=matchers,
            starts_at=starts_at or timezone.now(),
            ends_at=ends_at,
            comment=comment,
            created_by_id=actor.user.pk if actor.token is None and actor.is_authenticated else None,
            created_by_label=actor.label(),
        )
        publish(
            SilenceEvent.CREATED,
            actor=actor,
            subject=silence,
            team=team,
            message=comment[:200],
            payload={"matchers": matchers},
        )
    return silence


def expire_silence(silence: Silence, actor: Access) -> bool:
    """End a silence now, with its audit event; False if it had expired already."""
    with transaction.atomic():
        locked = Silence.objects.select_for_update().get(pk=silence.pk)
        if locked.expired_at is not None:
            return False
        locked.expire()
        publish(SilenceEvent.EXPIRED, actor=actor, subject=locked, team=locked.team)
    silence.expired_at = locked.expired_at
    return True


def clean_matchers(raw: Any) -> list[dict[str, str]]:
    """Checked matchers, or ValueError naming the first bad one and why."""
    if not isinstance(raw, list) or len(raw) > MAX_MATCHERS:
        raise ValueError(f"give a list of at most {MAX_MATCHERS} matchers")
    cleaned = []
    for index, matcher in enumerate(raw):
        where = f"matcher {index}"
        if not isinstance(matcher, dict) or set(matcher) != {"label", "op", "value"}:
            raise ValueError(f"{where}: give exactly label, op and value")
        label, op, value = matcher["label"], matcher["op"], matcher["value"]
        if label not in MATCHER_LABELS:
            raise ValueError(f"{where}: label must be one of {', '.join(MATCHER_LABELS)}")
        if op not in MatchOp.values:
            raise ValueError(f"{where}: op must be one of {', '.join(MatchOp.values)}")
        if not isinstance(value, str) or len(value) > 200:
            raise ValueError(f"{where}: value must be text of at most 200 characters")
        if op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{where}: not a regular expression ({exc})") from None
        cleaned.append({"label": label, "op": op, "value": value})
    return cleaned


def _maintenance_now(incident: Incident) -> bool:
    """Whether health has a maintenance window over the incident's service right now."""
    if incident.service_id is None or incident.environment_id is None:
        return False
    try:
        from health.maintenance import in_maintenance
    except ImportError:  # health not installed: only the events' in_maintenance flag counts
        return False
    return bool(in_maintenance(incident.service_id, incident.environment_id))
