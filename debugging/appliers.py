"""How a debug window's level reaches an instance and is read back: Spring Boot Actuator's
loggers endpoint, a webhook, or the client library (through the delivered config and the
levels each instance reports). Every outbound call goes through controlplane.outbound."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from catalog.models import Instance
from controlplane import outbound
from debugging.models import AppliedLevels, DebugWindow

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0

# The webhook's headers: the same scheme as alert webhook channels (docs/debugging.md).
SIGNATURE_HEADER = "X-Signalbox-Signature"
TIMESTAMP_HEADER = "X-Signalbox-Timestamp"


class ApplyFailed(Exception):
    """The instance (or webhook) did not take the level; the message says why."""


@dataclass(frozen=True)
class ReadBack:
    """What reading a logger's level back showed."""

    verified: bool
    level: str | None
    detail: str


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, as alert webhooks sign."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _call(method: str, url: str, body: Any = None, *, secret: str = "") -> outbound.Reply:
    headers = {"Accept": "application/json"}
    content = None
    if body is not None:
        content = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        headers["Content-Type"] = "application/json"
        if secret:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, content)
    try:
        return outbound.request(
            method, url, content=content, timeout=TIMEOUT_SECONDS, headers=headers
        )
    except outbound.Refused as exc:
        raise ApplyFailed(f"refused by the outbound policy: {exc}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise ApplyFailed(f"{method} {url}: {exc}") from None


# Python's names for the levels Spring Boot spells differently.
SPRING_NAMES = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def spring_level(level: str | None) -> str | None:
    return SPRING_NAMES.get(level, level) if level is not None else None


def logger_url(instance: Instance, name: str) -> str:
    return f"http://{instance.address}/actuator/loggers/{quote(name, safe='')}"


def actuator_level(instance: Instance, name: str) -> str | None:
    """`configuredLevel` of a logger (None: not set, it inherits)."""
    reply = _call("GET", logger_url(instance, name))
    if not reply.ok:
        raise ApplyFailed(f"GET {logger_url(instance, name)} answered {reply.status_code}")
    try:
        level = reply.json().get("configuredLevel")
    except (ValueError, AttributeError):
        raise ApplyFailed("the loggers endpoint did not answer JSON") from None
    return str(level) if level is not None else None


def actuator_set(instance: Instance, name: str, level: str | None) -> None:
    """POST {"configuredLevel": level}; None resets the logger to inherit, as Spring does."""
    reply = _call("POST", logger_url(instance, name), {"configuredLevel": spring_level(level)})
    if reply.status_code not in (200, 204):
        raise ApplyFailed(
            f"POST {logger_url(instance, name)} answered {reply.status_code}: "
            f"{outbound.excerpt(reply.text)}"
        )


def webhook_post(
    url: str,
    window: DebugWindow,
    instance: Instance,
    level: str | None,
    action: str,
    *,
    secret: str = "",
) -> ReadBack:
    """POST the change (signed when the service has a secret); the receiver proves it by
    answering {"level": <what it now has>}."""
    body = {
        "action": action,
        "window": window.pk,
        "service": window.service.slug,
        "environment": window.environment.slug,
        "instance": {
            "id": instance.pk,
            "host": instance.host,
            "port": instance.port,
            "zone": instance.zone,
        },
        "logger": window.logger,
        "level": level,
        "reason": window.reason,
        "incident": window.incident_ref,
        "ends_at": window.ends_at.isoformat(),
    }
    reply = _call("POST", url, body, secret=secret)
    if not reply.ok:
        raise ApplyFailed(f"webhook answered {reply.status_code}: {outbound.excerpt(reply.text)}")
    try:
        answered = reply.json().get("level") if reply.content else None
    except (ValueError, AttributeError):
        answered = None
    same = answered == level or (isinstance(answered, str) and answered.upper() == level)
    detail = "" if same else f"the webhook answered level {answered!r}, not {level!r}"
    return ReadBack(same, answered if isinstance(answered, str) else None, detail)


def client_read_back(
    instance: Instance, name: str, expected: str | None, since: Any
) -> ReadBack | None:
    """The level the instance reported for `name` after `since`; None while it has not yet."""
    report = AppliedLevels.objects.filter(instance=instance, reported_at__gte=since).first()
    if report is None:
        return None
    level = report.levels.get(name)
    if level == expected:
        return ReadBack(True, level, "")
    return ReadBack(False, level, f"the instance reports {level!r}, expected {expected!r}")
