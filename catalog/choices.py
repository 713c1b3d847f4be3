"""Named states and kinds of the catalog; call sites never use the bare strings."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames, ResourceEvents


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    DEPLOYER = "deployer", "Deployer"
    OWNER = "owner", "Owner"


ROLE_RANK = {Role.VIEWER: 1, Role.DEPLOYER: 2, Role.OWNER: 3}


class Tier(models.IntegerChoices):
    CRITICAL = 1, "Tier 1 (critical)"
    IMPORTANT = 2, "Tier 2 (important)"
    STANDARD = 3, "Tier 3 (standard)"
    EXPERIMENTAL = 4, "Tier 4 (experimental)"


class StatusSource(models.TextChoices):
    """Where an external dependency's state comes from (docs/external.md)."""

    NONE = "none", "None (not watched)"
    STATUSPAGE = "statuspage", "The vendor's Atlassian Statuspage (/api/v2/summary.json)"
    PROBE = "probe", "Our own HTTP probe"


class Lifecycle(models.TextChoices):
    """Where an instance is in its life, as the control plane sees it."""

    LAUNCHING = "launching", "Launching"  # started by a scaling group: no traffic until healthy
    REGISTERED = "registered", "Registered"  # known, not yet taking traffic
    ACTIVE = "active", "Active"  # in rotation
    DRAINING = "draining", "Draining"  # routing stopped, finishing requests
    READY_TO_TERMINATE = "ready_to_terminate", "Ready to terminate"  # said it is done
    STALE = "stale", "Stale"  # stopped sending heartbeats
    DEREGISTERED = "deregistered", "Deregistered"  # gone


LIVE_LIFECYCLES = (
    Lifecycle.LAUNCHING,
    Lifecycle.REGISTERED,
    Lifecycle.ACTIVE,
    Lifecycle.DRAINING,
    Lifecycle.STALE,
)


class Scope(models.TextChoices):
    """What an API token may do."""

    READ = "read", "Read anything"
    WRITE = "write", "Change the team's catalog and settings"
    DEPLOY = "deploy", "Start and act on the team's rollouts"
    REPORT = "report", "Register instances, send heartbeats and circuit reports"


# -- the catalog's events (its contract with the live pages, alert rules and the audit log) --


class TeamEvent(EventNames):
    FAMILY = "team."
    CREATED = "team.created"
    UPDATED = "team.updated"
    DELETED = "team.deleted"


class MembershipEvent(EventNames):
    FAMILY = "membership."
    CREATED = "membership.created"
    UPDATED = "membership.updated"
    DELETED = "membership.deleted"


class EnvironmentEvent(EventNames):
    FAMILY = "environment."
    CREATED = "environment.created"
    UPDATED = "environment.updated"
    DELETED = "environment.deleted"


class ExternalDependencyEvent(EventNames):
    FAMILY = "external_dependency."
    CREATED = "external_dependency.created"
    UPDATED = "external_dependency.updated"
    DELETED = "external_dependency.deleted"


class ServiceEvent(EventNames):
    FAMILY = "service."
    CREATED = "service.created"
    UPDATED = "service.updated"
    DELETED = "service.deleted"


class InstanceEvent(EventNames):
    FAMILY = "instance."
    REGISTERED = "instance.registered"  # by itself, or added by hand
    UPDATED = "instance.updated"
    DEREGISTERED = "instance.deregistered"
    STALE = "instance.stale"  # missed three heartbeats
    DELETED = "instance.deleted"


class TokenEvent(EventNames):
    FAMILY = "token."
    ISSUED = "token.issued"
    REVOKED = "token.revoked"


class InvitationEvent(EventNames):
    """Invitations to join a team (accepting one is the membership's `membership.created`)."""

    FAMILY = "invitation."
    SENT = "invitation.sent"
    CANCELLED = "invitation.cancelled"


class CatalogEvent(EventNames):
    FAMILY = "catalog."
    IMPORTED = "catalog.imported"


TEAM_EVENTS = TeamEvent.resource("team")
MEMBERSHIP_EVENTS = MembershipEvent.resource("membership")
ENVIRONMENT_EVENTS = EnvironmentEvent.resource("environment")
EXTERNAL_DEPENDENCY_EVENTS = ExternalDependencyEvent.resource("external dependency")
SERVICE_EVENTS = ServiceEvent.resource("service")
INSTANCE_EVENTS = ResourceEvents(
    "instance", InstanceEvent.REGISTERED, InstanceEvent.UPDATED, InstanceEvent.DELETED
)
