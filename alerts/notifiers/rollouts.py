"""Rollout notices, formatted per channel kind: a Slack message, signed webhook JSON, a
PagerDuty change event, an email, an Apprise title and body."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from alerts.choices import BAD_NOTICES, ChannelKind
from alerts.models import Channel
from alerts.notifiers import apprise_urls, email, opsgenie, pagerduty, slack, webhook
from alerts.notifiers.base import Result, post

ICON = {"succeeded": "✅", "started": "🚀", "promoted": "⏩", "resumed": "▶️"}
CHANGE_PATH = "/v2/change/enqueue"


def lines(details: dict[str, Any]) -> list[str]:
    """The plain-text body every text channel shares."""
    version = details.get("to_version") or "?"
    return [
        details.get("message") or details["title"],
        f"  service:     {details.get('service') or '-'}",
        f"  environment: {details.get('environment') or '-'}",
        f"  version:     {details.get('from_version') or '?'} -> {version}",
        f"  by:          {details.get('actor') or 'system'}",
        *([f"  rollout:     {details['url']}"] if details.get("url") else []),
    ]


def bad(details: dict[str, Any]) -> bool:
    return details.get("notice") in BAD_NOTICES


def slack_message(details: dict[str, Any]) -> dict[str, Any]:
    icon = "⚠️" if bad(details) else ICON.get(str(details.get("notice")), "•")
    title = f"{icon} {details['title']}"
    fields = [
        slack._mrkdwn(f"*{name}*\n{slack._escape(str(value or '—'))}", slack.FIELD_LIMIT)
        for name, value in (
            ("Service", details.get("service")),
            ("Environment", details.get("environment")),
            ("Version", f"{details.get('from_version') or '?'} → {details.get('to_version')}"),
            ("By", details.get("actor")),
        )
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": slack._mrkdwn(slack._escape(title), slack.TEXT_LIMIT)},
        {"type": "section", "fields": fields},
    ]
    if details.get("message"):
        text = slack._mrkdwn(slack._escape(details["message"]), slack.TEXT_LIMIT)
        blocks.append({"type": "context", "elements": [text]})
    if details.get("url"):
        button = {
            "type": "button",
            "text": slack._plain("Open rollout", 75),
            "url": details["url"],
            "action_id": f"signalbox_rollout_{details.get('rollout')}",
        }
        blocks.append({"type": "actions", "elements": [button]})
    return {"text": slack._cut(title, slack.TEXT_LIMIT), "blocks": blocks}


def webhook_body(channel: Channel, details: dict[str, Any], delivery: int) -> bytes:
    document = {
        "version": "1",
        "delivery": delivery,
        "action": "rollout",
        "team": channel.team.slug,
        "rollout_event": details,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def change_event(channel: Channel, details: dict[str, Any]) -> dict[str, Any]:
    """PagerDuty's Change Events API: deploys shown beside incidents, never a page."""
    document: dict[str, Any] = {
        "routing_key": channel.secret,
        "payload": {
            "summary": details["title"][: pagerduty.SUMMARY_LIMIT],
            "source": "signalbox",
            "timestamp": details.get("at") or datetime.now().astimezone().isoformat(),
            "custom_details": {
                k: details.get(k)
                for k in ("notice", "service", "environment", "from_version", "to_version")
            }
            | {"message": details.get("message"), "by": details.get("actor")},
        },
    }
    if details.get("url"):
        document["links"] = [{"href": details["url"], "text": "Rollout in Signalbox"}]
    return document


def change_events_url(channel: Channel) -> str:
    events = pagerduty.events_url(channel)
    return events.removesuffix("/v2/enqueue") + CHANGE_PATH


def send(channel: Channel, details: dict[str, Any], delivery: int) -> Result:
    kind = channel.kind
    if kind == ChannelKind.SLACK:
        return post(channel.secret, json.dumps(slack_message(details)).encode())
    if kind == ChannelKind.WEBHOOK:
        body = webhook_body(channel, details, delivery)
        timestamp = str(int(time.time()))
        headers = {webhook.TIMESTAMP_HEADER: timestamp, webhook.DELIVERY_HEADER: str(delivery)}
        if channel.secret:
            headers[webhook.SIGNATURE_HEADER] = webhook.sign(channel.secret, timestamp, body)
        return post(channel.url, body, headers)
    if kind == ChannelKind.PAGERDUTY:
        return post(change_events_url(channel), json.dumps(change_event(channel, details)).encode())
    if kind == ChannelKind.EMAIL:
        return _email(channel, details, delivery)
    key = f"signalbox-rollout-{details.get('rollout')}-{details.get('notice')}"
    if kind == ChannelKind.OPSGENIE:
        return opsgenie.send_notice(channel, details["title"], "\n".join(lines(details)), key)
    message = apprise_urls.event_message(
        channel, details["title"], "\n".join(lines(details)), key, bad(details)
    )
    return apprise_urls.deliver(channel.secret, message)


def _email(channel: Channel, details: dict[str, Any], delivery: int) -> Result:
    message = EmailMessage(
        subject=f"[Signalbox] {details['title']}"[:200],
        body="\n".join(lines(details)) + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(channel.config.get("to", [])),
        headers={"X-Signalbox-Delivery": str(delivery)},
        connection=get_connection(timeout=settings.ALERTS_HTTP_TIMEOUT_SECONDS),
    )
    return email.deliver(message)
