"""PagerDuty Events API v2: trigger, acknowledge and resolve one alert per incident."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings

from alerts.choices import NotificationAction, Severity
from alerts.models import Channel, Incident
from alerts.notifiers.base import (
    Result,
    caused_by,
    dependents_text,
    incident_url,
    post,
    runbook_url,
)

ROUTING_KEY_RE = re.compile(r"^[A-Za-z0-9]{32}$")
SEVERITY = {Severity.PAGE: "critical", Severity.TICKET: "warning", Severity.INFO: "info"}
SUMMARY_LIMIT = 1024  # PagerDuty truncates summaries at 1024 characters


def dedup_key(incident: Incident) -> str:
    return f"signalbox-incident-{incident.pk}"


def event(routing_key: str, action: str, incident: Incident) -> dict[str, Any]:
    document: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(incident),
    }
    if action != NotificationAction.TRIGGER:
        return document
    service = incident.service.slug if incident.service else None
    links = [{"href": incident_url(incident), "text": "Incident in Signalbox"}]
    if runbook_url(incident):
        links.append({"href": runbook_url(incident), "text": "Runbook"})
    details: dict[str, Any] = {
        "reason": incident.reason,
        "rule": incident.rule.name,
        "environment": incident.environment.slug if incident.environment else None,
        "state": incident.state,
    }
    # A root lists what it takes down with it (its trigger goes again, under the same
    # dedup_key, as dependents join); a dependent names and links its root.
    dependents = dependents_text(incident)
    if dependents:
        details["dependents"] = dependents
    if incident.root is not None:
        details["caused_by"] = caused_by(incident)
        details["root_dedup_key"] = dedup_key(incident.root)
        links.append({"href": incident_url(incident.root), "text": "Root incident"})
    document.update(
        {
            "payload": {
                "summary": incident.title[:SUMMARY_LIMIT],
                "source": incident.subject_label,
                "severity": SEVERITY[Severity(incident.severity)],
                "timestamp": (incident.fired_at or incident.fire_at).isoformat(),
                "component": service,
                "group": incident.team.slug,
                "class": incident.rule.kind,
                "custom_details": details,
            },
            "client": "Signalbox",
            "client_url": incident_url(incident),
            "links": links,
        }
    )
    return document


def events_url(channel: Channel) -> str:
    return channel.url or settings.ALERTS_PAGERDUTY_EVENTS_URL


def send(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> Result:
    result = Result(ok=True)
    if action == NotificationAction.AFFECTED:
        return result  # a heads-up is not a page: the root's team is the one paged
    for incident in incidents:
        result = post(
            events_url(channel), json.dumps(event(channel.secret, action, incident)).encode()
        )
        if not result.ok:
            return result
    return result


def send_test(channel: Channel) -> Result:
    """Trigger then resolve an info alert, so the test leaves nothing open in PagerDuty."""
    key = f"signalbox-test-{channel.pk}"
    trigger = {
        "routing_key": channel.secret,
        "event_action": NotificationAction.TRIGGER,
        "dedup_key": key,
        "payload": {
            "summary": f"Test notification from Signalbox ({channel.team.slug}/{channel.name})",
            "source": "signalbox",
            "severity": "info",
        },
    }
    result = post(events_url(channel), json.dumps(trigger).encode())
    if not result.ok:
        return result
    resolve = {"routing_key": channel.secret, "event_action": "resolve", "dedup_key": key}
    return post(events_url(channel), json.dumps(resolve).encode())
