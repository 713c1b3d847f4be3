"""Channel settings checked the same way from the API and the dashboard, and "send test"."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.utils import timezone

from alerts.choices import ChannelKind, DeliveryState, NotificationAction
from alerts.models import Channel, DeliveryAttempt, Notification
from alerts.notifiers import Result, apprise_urls, send
from alerts.notifiers.opsgenie import API_BASES, API_KEY_RE
from alerts.notifiers.pagerduty import ROUTING_KEY_RE
from controlplane import outbound

SLACK_WEBHOOK_PREFIX = "https://hooks.slack.com/"


def check(
    kind: str, secret: str, url: str, config: dict[str, Any], *, has_secret: bool
) -> dict[str, list[str]]:
    """{field: [reasons]} for a channel's settings; `has_secret` when one is already stored."""
    errors: dict[str, list[str]] = {}
    if kind == ChannelKind.SLACK:
        if not secret and not has_secret:
            errors["secret"] = ["give the Slack incoming webhook URL"]
        elif secret and not _is_url(secret):
            errors["secret"] = [
                "must be the webhook URL Slack gave you (https://hooks.slack.com/...)"
            ]
    elif kind == ChannelKind.PAGERDUTY:
        if not secret and not has_secret:
            errors["secret"] = ["give the integration's routing key (32 characters)"]
        elif secret and not ROUTING_KEY_RE.match(secret):
            errors["secret"] = ["a PagerDuty routing key is 32 letters and digits"]
    elif kind == ChannelKind.OPSGENIE:
        if not secret and not has_secret:
            errors["secret"] = ["give the API integration's key (a UUID, from Opsgenie)"]
        elif secret and not API_KEY_RE.match(secret):
            errors["secret"] = [
                "an Opsgenie API key looks like 1b2c3d4e-0000-4000-8000-00000000abcd"
            ]
        if config.get("region", "us") not in API_BASES:
            errors["config.region"] = [f"must be one of {', '.join(API_BASES)} (your account's)"]
    elif kind == ChannelKind.WEBHOOK:
        if not url:
            errors["url"] = ["give the URL to POST to"]
        if secret and len(secret) < 16:
            errors["secret"] = ["use a signing secret of at least 16 characters"]
    elif kind == ChannelKind.APPRISE:
        if not secret and not has_secret:
            errors["secret"] = ["give the Apprise URL (https://appriseit.com/services/)"]
        elif secret:
            reason = apprise_urls.problem(secret) or apprise_urls.host_refusal(secret)
            if reason:
                errors["secret"] = [reason]
    elif kind == ChannelKind.EMAIL:
        to = config.get("to")
        if not isinstance(to, list) or not to or not all(_is_email(a) for a in to):
            errors["config.to"] = ["give a list of one or more email addresses"]
    if url and not _is_url(url):
        errors["url"] = ["not a valid http(s) URL"]
    # Where we POST to: the Slack webhook URL (kept as the secret) and the PagerDuty or
    # webhook URL. Checked again at every send (controlplane/outbound.py).
    targets = {"url": url, "secret": secret if kind == ChannelKind.SLACK else ""}
    for field, target in targets.items():
        reason = outbound.refusal(target) if target and field not in errors else ""
        if reason:
            errors[field] = [
                f"{reason}; notifications never go to link-local or cloud-metadata addresses, "
                "nor to networks an admin has not allowed"
            ]
    settings_of: dict[str, set[str]] = {ChannelKind.EMAIL: {"to"}, ChannelKind.OPSGENIE: {"region"}}
    allowed = settings_of.get(kind, set())
    unknown = set(config) - allowed
    if unknown:
        errors["config"] = [f"unknown settings: {', '.join(sorted(unknown))}"]
    return errors


def _is_url(value: str) -> bool:
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return False
    return True


def _is_email(value: Any) -> bool:
    try:
        EmailValidator()(value)
    except ValidationError:
        return False
    return True


def send_test(channel: Channel, worker: str = "send-test") -> Result:
    """Send a test now (the person is waiting for the answer) and log it like any delivery."""
    notification = Notification.objects.create(
        channel=channel,
        action=NotificationAction.TEST,
        state=DeliveryState.DELIVERING,
        attempts=1,
        leased_by=worker,
    )
    started = time.monotonic()
    result = send(channel, NotificationAction.TEST, [], notification.pk)
    DeliveryAttempt.objects.create(
        notification=notification,
        worker=worker,
        status_code=result.status_code,
        ok=result.ok,
        error=result.error[:500],
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    notification.state = DeliveryState.DELIVERED if result.ok else DeliveryState.FAILED
    notification.delivered_at = timezone.now() if result.ok else None
    notification.last_status_code = result.status_code
    notification.last_error = result.error[:500]
    notification.save()
    return result
