"""What a notifier returns, and the one HTTP POST every HTTP notifier makes."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings
from django.utils import timezone

from alerts.models import Incident
from controlplane import outbound

USER_AGENT = "Signalbox-Alerts/1"


@dataclass(frozen=True)
class Result:
    """How a send went. `retryable` False means trying again cannot help (a 4xx)."""

    ok: bool
    status_code: int | None = None
    error: str = ""
    retryable: bool = False
    retry_after: float | None = None


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> Result:
    """POST JSON; 2xx is success, 429 and 5xx and network errors are retried, other 4xx not.

    The URL passes the outbound guard at every send (it may resolve elsewhere since it was
    saved); redirects are not followed: a notification goes where it was configured to."""
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    try:
        reply = outbound.request(
            "POST",
            url,
            content=body,
            headers=all_headers,
            timeout=settings.ALERTS_HTTP_TIMEOUT_SECONDS,
            max_bytes=4096,
        )
    except outbound.Refused as exc:
        # Trying again cannot make a refused address acceptable.
        return Result(ok=False, retryable=False, error=str(exc))
    except (OSError, httpx.HTTPError) as exc:
        return Result(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}"[:500])
    code = reply.status_code
    if reply.ok:
        return Result(ok=True, status_code=code)
    error = f"HTTP {code}: {outbound.excerpt(reply.text, 300)}"
    if code == 429:
        return Result(
            ok=False,
            status_code=code,
            error=error,
            retryable=True,
            retry_after=_retry_after(reply.headers.get("Retry-After")),
        )
    return Result(ok=False, status_code=code, error=error, retryable=code >= 500 or code < 200)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds or as an HTTP date; capped so a bad header cannot park a row."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), 3600.0)


def incident_url(incident: Incident) -> str:
    return settings.SIGNALBOX_BASE_URL.rstrip("/") + incident.get_absolute_url()


def runbook_url(incident: Incident) -> str:
    return incident.service.runbook_url if incident.service is not None else ""


def state_word(action: str, incident: Incident) -> str:
    """What a message says the incident is: the action's outcome, or its state for triggers."""
    from alerts.choices import NotificationAction

    if action == NotificationAction.RESOLVE:
        return "resolved"
    if action == NotificationAction.ACKNOWLEDGE:
        return "acknowledged"
    if action == NotificationAction.AFFECTED:
        return "affected"
    return str(incident.state)


def where(incident: Incident) -> str:
    """ "checkout in production": what a dependent list names."""
    service = incident.service.slug if incident.service else incident.subject_label
    return f"{service} in {incident.environment.slug}" if incident.environment else service


def caused_by(incident: Incident) -> str:
    """ "caused by #12 payments is down (checkout -> payments)", or "" when nothing did."""
    root = incident.root
    if root is None:
        return ""
    resolved = "" if root.state != "resolved" else ", resolved since"
    return f"caused by #{root.pk} {root.title} ({incident.caused_by_path}{resolved})"


def dependents_text(incident: Incident, limit: int = 20) -> list[str]:
    """One line per open dependent of a root: "#14 checkout in production: checkout is down
    (checkout -> payments)"."""
    dependents = incident.open_dependents()
    lines = [f"#{d.pk} {where(d)}: {d.title} ({d.caused_by_path})" for d in dependents[:limit]]
    if len(dependents) > limit:
        lines.append(f"and {len(dependents) - limit} more")
    return lines
