"""Named states of public status pages, in Statuspage's own vocabulary, and their events."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames


class ComponentStatus(models.TextChoices):
    """A component's status as Statuspage's API v2 spells it."""

    OPERATIONAL = "operational", "Operational"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"


class Indicator(models.TextChoices):
    """The page's overall indicator (`status.indicator`)."""

    NONE = "none", "All Systems Operational"
    MINOR = "minor", "Minor Service Outage"
    MAJOR = "major", "Partial System Outage"
    CRITICAL = "critical", "Major Service Outage"


INDICATOR_RANK = {Indicator.NONE: 0, Indicator.MINOR: 1, Indicator.MAJOR: 2, Indicator.CRITICAL: 3}
MAINTENANCE_DESCRIPTION = "Service Under Maintenance"


class IncidentStatus(models.TextChoices):
    """Where a published incident stands, as Statuspage names it."""

    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"


class BadgeKind(models.TextChoices):
    STATE = "state", "Current state"
    UPTIME_24H = "uptime_24h", "Uptime over 24 hours"
    UPTIME_7D = "uptime_7d", "Uptime over 7 days"
    UPTIME_30D = "uptime_30d", "Uptime over 30 days"


# The uptime window (health.rollups.UPTIME_WINDOWS key) each uptime badge shows.
BADGE_WINDOWS = {
    BadgeKind.UPTIME_24H: "24h",
    BadgeKind.UPTIME_7D: "7d",
    BadgeKind.UPTIME_30D: "30d",
}


class StatusPageEvent(EventNames):
    FAMILY = "statuspage."
    CREATED = "statuspage.created"
    UPDATED = "statuspage.updated"
    DELETED = "statuspage.deleted"


class PublicIncidentEvent(EventNames):
    FAMILY = "statuspage_incident."
    CREATED = "statuspage_incident.created"
    UPDATED = "statuspage_incident.updated"
    DELETED = "statuspage_incident.deleted"


class BadgeEvent(EventNames):
    FAMILY = "badge."
    CREATED = "badge.created"
    UPDATED = "badge.updated"
    DELETED = "badge.deleted"
    ROTATED = "badge.rotated"


STATUS_PAGE_EVENTS = StatusPageEvent.resource("status page")
PUBLIC_INCIDENT_EVENTS = PublicIncidentEvent.resource("public incident")
BADGE_EVENTS = BadgeEvent.resource("badge")
