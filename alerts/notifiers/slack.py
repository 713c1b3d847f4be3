"""Slack incoming webhook: a Block Kit message per group of incidents, within Slack's limits."""

from __future__ import annotations

import json
from typing import Any

from alerts.choices import IncidentState, NotificationAction
from alerts.models import Channel, Incident
from alerts.notifiers.base import (
    Result,
    caused_by,
    dependents_text,
    incident_url,
    post,
    runbook_url,
    state_word,
)

ACK_ACTION_ID = "signalbox_ack"
RESTART_ACTION_ID = "signalbox_rolling_restart"
# Incidents about a scaling group offer the remedy of a leak: a rolling restart.
SCALING_GROUP_SUBJECT = "scaling.scalinggroup"
# Slack's Block Kit limits: 50 blocks a message, 150 characters in a header, 3000 in a
# section's text, 2000 in a field, 75 in a button's text. At most four blocks per incident
# (the fourth names its root or lists its dependents) plus a header and a footer keep ten
# incidents inside 50.
MAX_INCIDENTS = 10
HEADER_LIMIT = 150
TEXT_LIMIT = 3000
FIELD_LIMIT = 2000
ICON = {"affected": "🟠", "firing": "🔴", "acknowledged": "👀", "resolved": "✅", "pending": "⏳"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _incident_blocks(action: str, incident: Incident) -> list[dict[str, Any]]:
    state = state_word(action, incident)
    service = incident.service.slug if incident.service else "—"
    environment = incident.environment.slug if incident.environment else "—"
    reason = incident.reason or "no reason given"
    if action == NotificationAction.ACKNOWLEDGE and incident.acknowledged_by:
        reason = f"acknowledged by {incident.acknowledged_by}"
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "text": _plain("Open in Signalbox", 75),
            "url": incident_url(incident),
            "action_id": f"signalbox_open_{incident.pk}",
        }
    ]
    if runbook_url(incident):
        buttons.append(
            {
                "type": "button",
                "text": _plain("Runbook", 75),
                "url": runbook_url(incident)[:3000],
                "action_id": f"signalbox_runbook_{incident.pk}",
            }
        )
    if action == NotificationAction.TRIGGER and incident.state == IncidentState.FIRING:
        buttons.append(
            {
                "type": "button",
                "text": _plain("Acknowledge", 75),
                "style": "primary",
                "action_id": ACK_ACTION_ID,
                "value": str(incident.pk),
            }
        )
    if (
        action == NotificationAction.TRIGGER
        and incident.state == IncidentState.FIRING
        and incident.subject_type == SCALING_GROUP_SUBJECT
    ):
        buttons.append(
            {
                "type": "button",
                "text": _plain("Rolling restart", 75),
                "action_id": RESTART_ACTION_ID,
                "value": str(incident.subject_id),
                "confirm": {
                    "title": _plain("Restart every instance?", 100),
                    "text": _mrkdwn(
                        "One by one: a new instance first, healthy before it takes traffic, "
                        "then an old one drained and stopped.",
                        300,
                    ),
                    "confirm": _plain("Restart", 30),
                    "deny": _plain("Cancel", 30),
                },
            }
        )
    return [
        *_section(action, incident, state, service, environment, reason),
        *_dependency_blocks(incident),
        {"type": "actions", "elements": buttons},
    ]


def _dependency_blocks(incident: Incident) -> list[dict[str, Any]]:
    """A root lists the dependents it takes down; a dependent names its root (linked)."""
    lines = [_escape(line) for line in dependents_text(incident)]
    if lines:
        text = "*Affected dependents*\n" + "\n".join(f"• {line}" for line in lines)
        return [{"type": "section", "text": _mrkdwn(text, TEXT_LIMIT)}]
    if incident.root is not None:
        root_link = f"<{incident_url(incident.root)}|#{incident.root.pk}>"
        text = f"*Caused by* {root_link}\n{_escape(caused_by(incident))}"
        return [{"type": "section", "text": _mrkdwn(text, TEXT_LIMIT)}]
    return []


def _section(
    action: str, incident: Incident, state: str, service: str, environment: str, reason: str
) -> list[dict[str, Any]]:
    return [
        {
            "type": "section",
            "text": _mrkdwn(
                f"{ICON.get(state, '•')} *<{incident_url(incident)}|{_escape(incident.title)}>*",
                TEXT_LIMIT,
            ),
            "fields": [
                _mrkdwn(f"*State*\n{state}", FIELD_LIMIT),
                _mrkdwn(f"*Severity*\n{incident.severity}", FIELD_LIMIT),
                _mrkdwn(f"*Service*\n{_escape(service)}", FIELD_LIMIT),
                _mrkdwn(f"*Environment*\n{_escape(environment)}", FIELD_LIMIT),
            ],
        },
        {"type": "section", "text": _mrkdwn(f"*Reason*\n{_escape(reason)}", TEXT_LIMIT)},
    ]


def headline(action: str, incidents: list[Incident]) -> str:
    state = state_word(action, incidents[0]).upper()
    root = incidents[0].root
    if action == NotificationAction.AFFECTED and root is not None:
        state = f"AFFECTED BY {root.title}"
    if len(incidents) == 1:
        return f"{state}: {incidents[0].title}"
    first = incidents[0]
    where = first.service.slug if first.service else first.team.slug
    env = f" ({first.environment.slug})" if first.environment else ""
    return f"{state}: {len(incidents)} incidents in {where}{env}"


def message(action: str, incidents: list[Incident]) -> dict[str, Any]:
    """The webhook body: `text` is the notification fallback, `blocks` the message."""
    title = headline(action, incidents)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(title, HEADER_LIMIT)}]
    for incident in incidents[:MAX_INCIDENTS]:
        blocks.extend(_incident_blocks(action, incident))
    footer = f"Signalbox · team {incidents[0].team.slug}"
    if len(incidents) > MAX_INCIDENTS:
        footer += f" · and {len(incidents) - MAX_INCIDENTS} more in Signalbox"
    blocks.append({"type": "context", "elements": [_mrkdwn(footer, TEXT_LIMIT)]})
    return {"text": _cut(title, TEXT_LIMIT), "blocks": blocks}


def test_message(channel: Channel) -> dict[str, Any]:
    text = f"Test notification from Signalbox to {channel.team.slug}/{channel.name}"
    return {"text": text, "blocks": [{"type": "section", "text": _mrkdwn(f"✅ {text}", 3000)}]}


def send(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> Result:
    document = (
        test_message(channel) if action == NotificationAction.TEST else message(action, incidents)
    )
    return post(channel.secret, json.dumps(document).encode())
