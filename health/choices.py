"""Named states and kinds of health checking; call sites never use the bare strings."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames, ResourceEvents


class CheckKind(models.TextChoices):
    HTTP = "http", "HTTP"
    TCP = "tcp", "TCP connect"
    GRPC = "grpc", "gRPC health (grpc.health.v1)"
    TLS = "tls", "TLS certificate expiry"


class Scheme(models.TextChoices):
    HTTP = "http", "http"
    HTTPS = "https", "https"


class HttpMethod(models.TextChoices):
    GET = "GET", "GET"
    HEAD = "HEAD", "HEAD"
    POST = "POST", "POST"


class CheckStatus(models.TextChoices):
    """The state of one instance's check (and the verdict of one probe, minus unknown)."""

    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"
    UNKNOWN = "unknown", "Unknown"


class ServiceStatus(models.TextChoices):
    """A service's health in one environment, derived from its instances (docs/health.md)."""

    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"
    UNKNOWN = "unknown", "Unknown"


class TransitionLevel(models.TextChoices):
    INSTANCE = "instance", "Instance"
    SERVICE = "service", "Service"


class Resolution(models.TextChoices):
    MINUTE = "minute", "Per minute"
    HOUR = "hour", "Per hour"


class ScheduleKind(models.TextChoices):
    PERIOD = "period", "Every period (plus grace)"
    CRON = "cron", "Cron schedule (plus grace)"


class HeartbeatStatus(models.TextChoices):
    NEW = "new", "New (never pinged)"
    UP = "up", "Up"
    DOWN = "down", "Down"
    PAUSED = "paused", "Paused"


class PingKind(models.TextChoices):
    SUCCESS = "success", "Success"
    START = "start", "Start"
    FAIL = "fail", "Fail"
    # A message for the history only (Healthchecks.io's /log): no state, no lateness.
    LOG = "log", "Log"


class JsonOp(models.TextChoices):
    """Comparisons a JSON-path condition may make against the first match."""

    EQUALS = "eq", "equals"
    NOT_EQUALS = "ne", "does not equal"
    EXISTS = "exists", "exists"
    LESS = "lt", "less than"
    GREATER = "gt", "greater than"
    CONTAINS = "contains", "contains"


class ExternalState(models.TextChoices):
    """An external dependency's state, from its vendor's page or our probe (docs/external.md)."""

    OPERATIONAL = "operational", "Operational"
    DEGRADED = "degraded", "Degraded"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    MAINTENANCE = "maintenance", "Maintenance"
    UNKNOWN = "unknown", "Unknown"


# How bad each external state is: the worst watched component decides.
EXTERNAL_SEVERITY = {
    ExternalState.OPERATIONAL: 0,
    ExternalState.MAINTENANCE: 1,
    ExternalState.DEGRADED: 2,
    ExternalState.PARTIAL_OUTAGE: 3,
    ExternalState.MAJOR_OUTAGE: 4,
    ExternalState.UNKNOWN: 5,
}


# How a status reads on the dashboard: an icon and a word, never colour alone.
STATUS_ICONS = {
    CheckStatus.PASS: "✔",
    CheckStatus.WARN: "▲",
    CheckStatus.FAIL: "✖",
    CheckStatus.UNKNOWN: "?",
    ServiceStatus.HEALTHY: "✔",
    ServiceStatus.DEGRADED: "▲",
    ServiceStatus.DOWN: "✖",
    HeartbeatStatus.UP: "✔",
    HeartbeatStatus.DOWN: "✖",
    HeartbeatStatus.NEW: "…",
    HeartbeatStatus.PAUSED: "‖",
    ExternalState.OPERATIONAL: "✔",
    ExternalState.DEGRADED: "▲",
    ExternalState.PARTIAL_OUTAGE: "▲",
    ExternalState.MAJOR_OUTAGE: "✖",
    ExternalState.MAINTENANCE: "‖",
}


# -- health's events ---------------------------------------------------------------------------


class HealthEvent(EventNames):
    FAMILY = "health."
    INSTANCE_CHANGED = "health.instance.changed"  # an instance check's status moved
    SERVICE_CHANGED = "health.service.changed"  # a service's derived state moved
    CHECK_CREATED = "health.check.created"
    CHECK_UPDATED = "health.check.updated"
    CHECK_DELETED = "health.check.deleted"


class HeartbeatEvent(EventNames):
    FAMILY = "heartbeat."
    CREATED = "heartbeat.created"
    UPDATED = "heartbeat.updated"
    DELETED = "heartbeat.deleted"
    LATE = "heartbeat.late"
    FAILED = "heartbeat.failed"
    RECOVERED = "heartbeat.recovered"
    PAUSED = "heartbeat.paused"  # by a person: silence is not news until it pings again
    RESUMED = "heartbeat.resumed"


class MaintenanceEvent(EventNames):
    FAMILY = "maintenance."
    CREATED = "maintenance.created"
    UPDATED = "maintenance.updated"
    DELETED = "maintenance.deleted"
    STARTED = "maintenance.started"
    ENDED = "maintenance.ended"


class ExternalEvent(EventNames):
    """An external dependency's watched state moved (the payload is a contract that
    alerting consumes: docs/external.md)."""

    FAMILY = "external."
    STATUS_CHANGED = "external.status.changed"


CHECK_SPEC_EVENTS = ResourceEvents(
    "health check", HealthEvent.CHECK_CREATED, HealthEvent.CHECK_UPDATED, HealthEvent.CHECK_DELETED
)
HEARTBEAT_EVENTS = HeartbeatEvent.resource("heartbeat")
MAINTENANCE_EVENTS = MaintenanceEvent.resource("maintenance")
