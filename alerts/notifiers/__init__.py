"""Notifiers: one module per channel kind, each with send(channel, action, incidents, delivery)."""

from __future__ import annotations

from collections.abc import Callable

from alerts.choices import ChannelKind, NotificationAction
from alerts.models import Channel, Incident
from alerts.notifiers import apprise_urls, email, opsgenie, pagerduty, slack, webhook
from alerts.notifiers.base import Result

Sender = Callable[[Channel, str, list[Incident], int], Result]
SENDERS: dict[str, Sender] = {
    ChannelKind.SLACK: slack.send,
    ChannelKind.PAGERDUTY: pagerduty.send,
    ChannelKind.OPSGENIE: opsgenie.send,
    ChannelKind.WEBHOOK: webhook.send,
    ChannelKind.EMAIL: email.send,
    ChannelKind.APPRISE: apprise_urls.send,
}


def send(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> Result:
    if action == NotificationAction.TEST and channel.kind == ChannelKind.PAGERDUTY:
        return pagerduty.send_test(channel)
    if action == NotificationAction.TEST and channel.kind == ChannelKind.OPSGENIE:
        return opsgenie.send_test(channel)
    return SENDERS[channel.kind](channel, action, incidents, delivery)


__all__ = ["Result", "send"]
