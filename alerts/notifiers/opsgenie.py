"""Opsgenie Alert API v2: create one alert per incident (alias = the incident's stable key),
acknowledge and close it by that alias as the incident moves in Signalbox."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from alerts.choices import NotificationAction, Severity
from alerts.models import Channel, Incident
from alerts.notifiers.base import Result, caused_by, dependents_text, incident_url, post
from alerts.notifiers.pagerduty import dedup_key

# Opsgenie's two instances; an account lives in one (config `region`, US by default).
API_BASES = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
# An Opsgenie API integration key is a UUID.
API_KEY_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
PRIORITY = {Severity.PAGE: "P1", Severity.TICKET: "P3", Severity.INFO: "P5"}
MESSAGE_LIMIT = 130  # Opsgenie cuts an alert's message at 130 characters
DESCRIPTION_LIMIT = 15000
SOURCE = "Signalbox"


def base_url(channel: Channel) -> str:
    """The channel's URL when set (a proxy, a test receiver), else its region's API."""
    return (channel.url or API_BASES[channel.config.get("region", "us")]).rstrip("/")


def alias(incident: Incident) -> str:
    """The incident's stable key: the same alias every time, so Opsgenie dedupes on it."""
    return dedup_key(incident)


def create_body(incident: Incident) -> dict[str, Any]:
    details = {
        "reason": incident.reason,
        "rule": incident.rule.name,
        "state": str(incident.state),
        "signalbox_url": incident_url(incident),
    }
    if incident.environment is not None:
        details["environment"] = incident.environment.slug
    if incident.root is not None:
        details["caused_by"] = caused_by(incident)
        details["root_alias"] = alias(incident.root)
    description = "\n".join(
        [incident.reason, "", incident_url(incident), *dependents_text(incident)]
    )
    tags = [f"team:{incident.team.slug}", f"severity:{incident.severity}"]
    if incident.service is not None:
        tags.append(f"service:{incident.service.slug}")
    return {
        "message": incident.title[:MESSAGE_LIMIT],
        "alias": alias(incident),
        "description": description[:DESCRIPTION_LIMIT],
        "source": SOURCE,
        "entity": incident.subject_label,
        "priority": PRIORITY[Severity(incident.severity)],
        "tags": tags,
        "details": details,
    }


def _headers(channel: Channel) -> dict[str, str]:
    return {"Authorization": f"GenieKey {channel.secret}"}


def _create(channel: Channel, body: dict[str, Any]) -> Result:
    return post(f"{base_url(channel)}/v2/alerts", json.dumps(body).encode(), _headers(channel))


def _by_alias(channel: Channel, key: str, verb: str, note: str) -> Result:
    url = f"{base_url(channel)}/v2/alerts/{quote(key, safe='')}/{verb}?identifierType=alias"
    body = {"source": SOURCE, "user": SOURCE, "note": note}
    return post(url, json.dumps(body).encode(), _headers(channel))


def send(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> Result:
    result = Result(ok=True)
    if action == NotificationAction.AFFECTED:
        return result  # a heads-up is not a page: the root's team is the one paged
    for incident in incidents:
        if action == NotificationAction.TRIGGER:
            result = _create(channel, create_body(incident))
        elif action == NotificationAction.ACKNOWLEDGE:
            result = _by_alias(channel, alias(incident), "acknowledge", "acknowledged in Signalbox")
        elif action == NotificationAction.RESOLVE:
            result = _by_alias(channel, alias(incident), "close", "resolved in Signalbox")
        if not result.ok:
            return result
    return result


def send_test(channel: Channel) -> Result:
    """Create then close a P5 alert, so the test leaves nothing open in Opsgenie."""
    key = f"signalbox-test-{channel.pk}"
    body = {
        "message": f"Test notification from Signalbox ({channel.team.slug}/{channel.name})"[
            :MESSAGE_LIMIT
        ],
        "alias": key,
        "source": SOURCE,
        "priority": "P5",
    }
    result = _create(channel, body)
    if not result.ok:
        return result
    return _by_alias(channel, key, "close", "Signalbox channel test")


def send_notice(channel: Channel, title: str, text: str, key: str) -> Result:
    """A rollout's notice as an informational (P5) alert: Opsgenie has no change events."""
    body = {
        "message": title[:MESSAGE_LIMIT],
        "alias": key,
        "description": text[:DESCRIPTION_LIMIT],
        "source": SOURCE,
        "priority": "P5",
    }
    return _create(channel, body)
