"""Identity's named values and the events it publishes."""

from __future__ import annotations

from controlplane.events import EventNames

# The target of a group mapping that makes platform admins (superusers) rather than a team role.
PLATFORM = "platform"
PLATFORM_ADMIN = "admin"


class LocalLogin:
    """Who may sign in with a local password (SIGNALBOX_LOCAL_LOGIN)."""

    EVERYONE = "everyone"
    ADMINS = "admins"


class AccountEvent(EventNames):
    FAMILY = "account."
    SSO_LINKED = "account.sso_linked"  # a first SSO login made or linked an account
    ADMIN_GRANTED = "account.admin_granted"  # an identity-provider group made a platform admin
    ADMIN_REVOKED = "account.admin_revoked"
    LOCKED_OUT = "account.locked_out"  # too many failed logins
