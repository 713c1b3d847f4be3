"""Named states and kinds of the catalog; call sites never use the bare strings."""

from __future__ import annotations

from django.db import models


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


class Lifecycle(models.TextChoices):
    """Where an instance is in its life, as the control plane sees it."""

    REGISTERED = "registered", "Registered"  # known, not yet taking traffic
    ACTIVE = "active", "Active"  # in rotation
    DRAINING = "draining", "Draining"  # routing stopped, finishing requests
    READY_TO_TERMINATE = "ready_to_terminate", "Ready to terminate"  # said it is done
    STALE = "stale", "Stale"  # stopped sending heartbeats
    DEREGISTERED = "deregistered", "Deregistered"  # gone


LIVE_LIFECYCLES = (Lifecycle.REGISTERED, Lifecycle.ACTIVE, Lifecycle.DRAINING, Lifecycle.STALE)


class Scope(models.TextChoices):
    """What an API token may do."""

    READ = "read", "Read anything"
    WRITE = "write", "Change the team's catalog and settings"
    DEPLOY = "deploy", "Start and act on the team's rollouts"
    REPORT = "report", "Register instances, send heartbeats and circuit reports"
