"""The long tail through Apprise: one channel kind whose secret is an Apprise URL.

Microsoft Teams (`workflows://`), Discord, Telegram, Opsgenie, Mattermost, ntfy, Pushover
and ~100 more, each by its URL (https://appriseit.com/services/). Apprise's plugins make
their own connections, so a send runs inside `outbound.guarded_connections()` (every socket
connect checked, names resolved first) and every HTTP request its plugins make through
`requests` is checked by URL before it leaves (each redirect hop too) and its answer
recorded: that record is how a failure maps to retry or give-up, as for the native
notifiers. Apprise's own retries are off; the outbox retries, with backoff.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import apprise
import requests
from apprise.plugins.base import NotifyBase

from alerts.choices import NotificationAction, Severity
from alerts.models import Channel, Incident
from alerts.notifiers.base import Result, _retry_after, incident_url
from alerts.notifiers.email import subject_and_body
from alerts.notifiers.slack import headline
from controlplane import outbound

# Plugins that do not notify over a TCP connection to a user-set host: desktop and local
# buses, and syslog over UDP. Refused on save.
LOCAL_SCHEMAS = frozenset({"syslog", "rsyslog", "dbus", "kde", "qt", "glib", "gio", "gnome"})
# Services where every message opens an alert: one per incident, with our key as its alias
# so Opsgenie folds repeats into the open alert.
OPSGENIE = "opsgenie"
OPSGENIE_PRIORITY = {Severity.PAGE: "1", Severity.TICKET: "3", Severity.INFO: "5"}
NOTIFY_TYPE = {
    Severity.PAGE: apprise.NotifyType.FAILURE,
    Severity.TICKET: apprise.NotifyType.WARNING,
    Severity.INFO: apprise.NotifyType.INFO,
}
ERROR_LIMIT = 500
# Apprise logs request URLs, payloads and socket errors (tokens in all of them: Teams'
# signature, a bot token) at DEBUG and INFO: its logger stays at WARNING whatever the root
# level, so no log line carries a channel's secret.
logging.getLogger(apprise.LOGGER_NAME).setLevel(logging.WARNING)


def schema_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def plugin_for(url: str) -> NotifyBase | None:
    """The Apprise plugin this URL configures, or None when Apprise cannot parse it."""
    plugin = apprise.Apprise.instantiate(url.strip(), suppress_exceptions=True)
    return plugin if isinstance(plugin, NotifyBase) else None


def problem(url: str) -> str:
    """Why this URL cannot be saved as an Apprise channel ("" when it can)."""
    if "://" not in url:
        return "must be an Apprise URL such as workflows://..., opsgenie://..., tgram://..."
    schema = schema_of(url)
    if schema in LOCAL_SCHEMAS:
        return f"{schema}:// notifies this machine, not a service; choose another"
    plugin = plugin_for(url)
    if plugin is None:
        return (
            f"Apprise cannot parse this {schema}:// URL: check it against "
            "https://appriseit.com/services/"
        )
    if not plugin.enabled:
        return f"{schema}:// needs a package this installation does not have"
    return ""


def host_refusal(url: str) -> str:
    """Refuse at save a host the guard would refuse at every send: a metadata name or a
    forbidden address. Names are not resolved here (for many services the "host" of the
    URL is a token, which must not go to DNS); every connection is checked at send."""
    plugin = plugin_for(url)
    host = getattr(plugin, "host", None)
    if not isinstance(host, str) or not host:
        return ""
    try:
        outbound.check_host(host)
    except outbound.Refused as exc:
        return (
            f"{exc}; notifications never go to link-local or cloud-metadata addresses, "
            "nor to networks an admin has not allowed"
        )
    return ""


def redacted(url: str) -> str:
    """The URL as Apprise prints it in privacy mode: tokens and passwords elided."""
    plugin = plugin_for(url) if url else None
    if plugin is None:
        return outbound.excerpt(schema_of(url) + "://••••••••", 60) if url else ""
    return str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]


def follows_up(channel: Channel, action: str) -> bool:
    """Whether acknowledges and resolves go to this channel (see docs/alerts.md)."""
    return schema_of(channel.secret or "") != OPSGENIE


# -- what is sent -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    notify_type: apprise.NotifyType
    query: dict[str, str] = field(default_factory=dict)  # URL arguments for this one send


def incident_messages(channel: Channel, action: str, incidents: list[Incident]) -> list[Message]:
    if action == NotificationAction.TEST:
        title, body = subject_and_body(channel, action, incidents)
        return [Message(title, body, apprise.NotifyType.INFO, _opsgenie_test(channel))]
    if schema_of(channel.secret) == OPSGENIE:
        if action != NotificationAction.TRIGGER:
            return []  # a heads-up is not an alert; acks and resolves: see follows_up
        return [_opsgenie_alert(channel, incident) for incident in incidents]
    _, body = subject_and_body(channel, action, incidents)
    return [Message(headline(action, incidents), body, _notify_type(action, incidents))]


def _notify_type(action: str, incidents: list[Incident]) -> apprise.NotifyType:
    if action == NotificationAction.RESOLVE:
        return apprise.NotifyType.SUCCESS
    if action in (NotificationAction.ACKNOWLEDGE, NotificationAction.AFFECTED):
        return apprise.NotifyType.INFO
    order = list(Severity)  # most urgent first
    worst = min(incidents, key=lambda incident: order.index(Severity(incident.severity)))
    return NOTIFY_TYPE[Severity(worst.severity)]


def _opsgenie_alert(channel: Channel, incident: Incident) -> Message:
    _, body = subject_and_body(channel, NotificationAction.TRIGGER, [incident])
    tags = [f"team:{incident.team.slug}", f"severity:{incident.severity}"]
    if incident.service is not None:
        tags.append(f"service:{incident.service.slug}")
    if incident.environment is not None:
        tags.append(f"environment:{incident.environment.slug}")
    return Message(
        incident.title,
        body,
        NOTIFY_TYPE[Severity(incident.severity)],
        {
            "action": "new",
            "alias": f"signalbox-incident-{incident.pk}",
            "priority": OPSGENIE_PRIORITY[Severity(incident.severity)],
            "entity": incident.subject_label[:512],
            "tags": ",".join(tags),
            "+incident_url": incident_url(incident),
            "+signalbox_incident": str(incident.pk),
        },
    )


def _opsgenie_test(channel: Channel) -> dict[str, str]:
    if schema_of(channel.secret) != OPSGENIE:
        return {}
    return {"action": "new", "alias": f"signalbox-test-{channel.pk}", "priority": "5"}


def event_message(channel: Channel, title: str, body: str, key: str, failed: bool) -> Message:
    """A rollout event: a chat message, or (Opsgenie) a low-priority alert of its own."""
    kind = apprise.NotifyType.WARNING if failed else apprise.NotifyType.INFO
    query: dict[str, str] = {}
    if schema_of(channel.secret) == OPSGENIE:
        query = {"action": "new", "alias": key, "priority": "3" if failed else "5"}
    return Message(title, body, kind, query)


# -- sending ----------------------------------------------------------------------------------


def send(channel: Channel, action: str, incidents: list[Incident], delivery: int) -> Result:
    result = Result(ok=True)
    for message in incident_messages(channel, action, incidents):
        result = deliver(channel.secret, message)
        if not result.ok:
            return result
    return result


def deliver(url: str, message: Message) -> Result:
    """One Apprise send under the guard, mapped to a Result the outbox understands."""
    plugin = plugin_for(_with_query(url, message.query))
    if plugin is None or not plugin.enabled:
        return Result(ok=False, retryable=False, error=problem(url) or "not an Apprise URL")
    plugin.retry = 0  # the outbox retries, with backoff and a lease
    plugin.redirects = False  # a notification goes where it was configured to
    capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
    with _recording() as log, capture as said:
        try:
            sent = bool(
                plugin.notify(
                    body=message.body, title=message.title, notify_type=message.notify_type
                )
            )
        except Exception as exc:  # a plugin's bug must not wedge the row
            log.failures.append((None, f"{type(exc).__name__}: {exc}", True))
            sent = False
        warnings = [line for line in said.getvalue().splitlines() if line.strip()]
    service = str(plugin.service_name or schema_of(url))
    return log.result(sent, service, warnings[-1] if warnings else "")


def _with_query(url: str, extra: dict[str, str]) -> str:
    if not extra:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(extra)
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@dataclass
class _Log:
    """What the plugin's requests met: answers, refusals and connection errors."""

    statuses: list[int] = field(default_factory=list)
    # (status or None, error, retryable)
    failures: list[tuple[int | None, str, bool]] = field(default_factory=list)
    retry_after: float | None = None

    def result(self, sent: bool, service: str, warning: str) -> Result:
        status = self.statuses[-1] if self.statuses else None
        if sent and not self.failures:
            return Result(ok=True, status_code=status)
        if not self.failures:
            # No HTTP request failed: the plugin declined, or its transport is not HTTP
            # (email's SMTP). A lost notification is worse than a pointless retry, and
            # the attempts are bounded (ALERTS_MAX_ATTEMPTS).
            return Result(
                ok=False,
                status_code=status,
                retryable=True,
                error=f"{service}: {warning or 'Apprise did not send it'}",
            )
        code, error, retryable = self.failures[-1]
        return Result(
            ok=False,
            status_code=code,
            retryable=retryable,
            error=error[:ERROR_LIMIT],
            retry_after=self.retry_after if code == 429 else None,
        )


_current = threading.local()
_plain_send: Callable[..., requests.Response] = requests.sessions.Session.send


def _connection_error(request: requests.PreparedRequest, exc: BaseException) -> str:
    """What failed, without the URL: requests' messages carry its path and query, where
    many services keep their tokens (Teams' signature, a bot token)."""
    host = urlsplit(str(request.url)).hostname or "the service"
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if type(seen).__module__ == "builtins" or isinstance(seen, socket.gaierror):
            return f"{type(exc).__name__} to {host}: {type(seen).__name__}: {seen}"
        after = seen.__cause__ or seen.__context__ or getattr(seen, "reason", None)
        seen = after if isinstance(after, BaseException) else None
    return f"{type(exc).__name__} to {host}"


@contextmanager
def _recording() -> Iterator[_Log]:
    _install_requests_guard()
    log = _Log()
    _current.log = log
    try:
        with outbound.guarded_connections():
            yield log
    finally:
        _current.log = None


def _install_requests_guard() -> None:
    if getattr(requests.sessions.Session.send, "_signalbox_guard", False):
        return

    def guarded_send(
        session: requests.Session, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        log: _Log | None = getattr(_current, "log", None)
        if log is None:
            return _plain_send(session, request, **kwargs)
        return _send_logged(session, request, log, kwargs)

    guarded_send._signalbox_guard = True  # type: ignore[attr-defined]
    requests.sessions.Session.send = guarded_send  # type: ignore[method-assign,assignment]


def _send_logged(
    session: requests.Session, request: requests.PreparedRequest, log: _Log, kwargs: Any
) -> requests.Response:
    reason = outbound.refusal(str(request.url))
    if reason:
        log.failures.append((None, reason, False))
        raise requests.exceptions.ConnectionError(reason, request=request)
    try:
        response = _plain_send(session, request, **kwargs)
    except requests.RequestException as exc:
        refused = outbound.refused_by(exc)
        if refused is not None:
            log.failures.append((None, str(refused), False))
        else:
            log.failures.append((None, _connection_error(request, exc), True))
        raise
    code = response.status_code
    log.statuses.append(code)
    if code >= 300:
        text = outbound.excerpt(response.text, 300)
        log.failures.append((code, f"HTTP {code}: {text}", code == 429 or code >= 500))
        if code == 429:
            log.retry_after = _retry_after(response.headers.get("Retry-After"))
    return response
