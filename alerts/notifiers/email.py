"""Email through Django's email backend (SMTP in production)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from alerts.choices import NotificationAction
from alerts.models import Channel, Incident
from alerts.notifiers.base import (
    Result,
    caused_by,
    dependents_text,
    incident_url,
    runbook_url,
    state_word,
)
from alerts.notifiers.slack import headline


def subject_and_body(channel: Channel, action: str, incidents: list[Incident]) -> tuple[str, str]:
    if action == NotificationAction.TEST:
        return (
            f"[Signalbox] Test notification for {channel.team.slug}",
            f"This is a test from Signalbox to the channel {channel.name}.\n",
        )
    lines = []
    for incident in incidents:
        lines += [
            f"{incident.title}",
            f"  state:       {state_word(action, incident)}",
            f"  severity:    {incident.severity}",
            f"  service:     {incident.service.slug if incident.service else '-'}",
            f"  environment: {incident.environment.slug if incident.environment else '-'}",
            f"  reason:      {incident.reason or '-'}",
            f"  incident:    {incident_url(incident)}",
        ]
        if runbook_url(incident):
            lines.append(f"  runbook:     {runbook_url(incident)}")
        if incident.root is not None:
            lines.append(f"  cause:       {caused_by(incident)}")
        dependents = dependents_text(incident)
        if dependents:
            lines.append("  affects:")
            lines += [f"    {line}" for line in dependents]
        lines.append("")
    return f"[Signalbox] {headline(action, incidents)}"[:200], "\n".join(lines)


def send(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> Result:
    subject, body = subject_and_body(channel, action, incidents)
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(channel.config.get("to", [])),
        headers={"X-Signalbox-Delivery": str(delivery)},
        connection=get_connection(timeout=settings.ALERTS_HTTP_TIMEOUT_SECONDS),
    )
    return deliver(message)


def deliver(message: EmailMessage) -> Result:
    """Send; SMTP's own answer says whether trying again can help."""
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        return Result(ok=False, retryable=False, error=f"recipients refused: {exc.recipients}")
    except smtplib.SMTPResponseException as exc:
        # 5xx is a permanent refusal; 4xx asks us to come back later.
        return Result(
            ok=False,
            retryable=exc.smtp_code < 500,
            error=f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
        )
    except (smtplib.SMTPException, OSError) as exc:
        return Result(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}"[:500])
    return Result(ok=True)
