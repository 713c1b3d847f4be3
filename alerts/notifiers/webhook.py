"""Generic webhook: JSON, signed with HMAC-SHA256 over "<timestamp>.<body>" (see docs/alerts.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from alerts.models import Channel, Incident
from alerts.notifiers.base import Result, incident_url, post, runbook_url, state_word, where

SIGNATURE_HEADER = "X-Signalbox-Signature"
TIMESTAMP_HEADER = "X-Signalbox-Timestamp"
DELIVERY_HEADER = "X-Signalbox-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def incident_json(action: str, incident: Incident) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": incident.pk,
        "url": incident_url(incident),
        "title": incident.title,
        "state": state_word(action, incident),
        "severity": incident.severity,
        "team": incident.team.slug,
        "service": incident.service.slug if incident.service else None,
        "environment": incident.environment.slug if incident.environment else None,
        "subject": incident.subject_label,
        "reason": incident.reason,
        "rule": incident.rule.name,
        "dedup_key": incident.dedup_key,
        "fired_at": iso(incident.fired_at),
        "acknowledged_at": iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by or None,
        "resolved_at": iso(incident.resolved_at),
        "runbook_url": runbook_url(incident) or None,
        # Dependency-aware grouping: what caused this one, and what this one caused.
        "root": _ref(incident.root) if incident.root is not None else None,
        "caused_by_path": incident.caused_by_path or None,
        "dependents": [
            {**_ref(d), "where": where(d), "caused_by_path": d.caused_by_path}
            for d in incident.open_dependents()
        ],
    }


def _ref(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "url": incident_url(incident),
        "title": incident.title,
        "state": str(incident.state),
        "team": incident.team.slug,
    }


def body(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> bytes:
    document = {
        "version": "1",
        "delivery": delivery,
        "action": action,
        "team": channel.team.slug,
        "incidents": [incident_json(action, i) for i in incidents],
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def send(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> Result:
    payload = body(channel, action, incidents, delivery)
    timestamp = str(int(time.time()))
    headers = {
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: str(delivery),  # the same on every retry: receivers dedupe on it
    }
    if channel.secret:
        headers[SIGNATURE_HEADER] = sign(channel.secret, timestamp, payload)
    return post(channel.url, payload, headers)
