"""Identity-provider groups to team roles (SIGNALBOX_OIDC_GROUP_ROLES), applied at each login.

The mapping is authoritative for what it names: a team it mentions gets exactly the role the
person's groups give (the highest, if several), and loses the membership when none does;
teams it never mentions are managed by hand as before. `platform:admin` does the same for
platform admin (superuser). Changes go through the catalog's write path, one event each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from catalog.api.serializers import MembershipSerializer
from catalog.choices import MEMBERSHIP_EVENTS, ROLE_RANK, Role
from catalog.models import Membership, Team
from controlplane import changes
from controlplane.events import publish
from identity.choices import PLATFORM, PLATFORM_ADMIN, AccountEvent

logger = logging.getLogger(__name__)
ACTOR = "sso"


@dataclass(frozen=True)
class Grant:
    """One entry: members of `group` get `role` in team `team` (or platform admin)."""

    group: str
    team: str
    role: str

    @property
    def is_platform_admin(self) -> bool:
        return self.team == PLATFORM and self.role == PLATFORM_ADMIN


def parse(text: str) -> list[Grant]:
    """Entries `group=team:role`, comma-separated on one line or one per line (a group name
    with commas, such as an LDAP DN, needs one per line)."""
    entries = text.splitlines() if "\n" in text.strip() else text.split(",")
    grants = []
    roles = ", ".join(Role.values)
    for entry in (e.strip() for e in entries):
        if not entry or entry.startswith("#"):
            continue
        group, equals, target = entry.rpartition("=")
        team, colon, role = target.strip().partition(":")
        grant = Grant(group.strip(), team.strip(), role.strip())
        if not (equals and colon and grant.group and grant.team):
            raise ImproperlyConfigured(
                f"SIGNALBOX_OIDC_GROUP_ROLES: {entry!r} is not group=team:role "
                "(e.g. payments-oncall=payments:deployer, platform-admins=platform:admin)"
            )
        if grant.team == PLATFORM and not grant.is_platform_admin:
            raise ImproperlyConfigured(
                f"SIGNALBOX_OIDC_GROUP_ROLES: {entry!r}: the platform target takes one role, "
                "admin (platform:admin)"
            )
        if not grant.is_platform_admin and grant.role not in Role.values:
            raise ImproperlyConfigured(
                f"SIGNALBOX_OIDC_GROUP_ROLES: {entry!r}: role {grant.role!r} is not one of "
                f"{roles}"
            )
        grants.append(grant)
    return grants


@cache
def mapping() -> tuple[Grant, ...]:
    return tuple(parse(settings.SIGNALBOX_OIDC_GROUP_ROLES))


def wanted_roles(grants: tuple[Grant, ...], groups: set[str]) -> dict[str, str]:
    """{team slug: the highest role the groups give} for the teams the mapping names."""
    wanted: dict[str, str] = {}
    for grant in grants:
        if grant.is_platform_admin or grant.group not in groups:
            continue
        current = wanted.get(grant.team)
        if current is None or ROLE_RANK[Role(grant.role)] > ROLE_RANK[Role(current)]:
            wanted[grant.team] = grant.role
    return wanted


def apply(user: User, groups: list[str], grants: tuple[Grant, ...] | None = None) -> None:
    """Make the person's memberships (and platform admin) what their groups say, in one
    transaction."""
    grants = mapping() if grants is None else grants
    if not grants:
        return
    members_of = set(groups)
    wanted = wanted_roles(grants, members_of)
    named = {g.team for g in grants if not g.is_platform_admin}
    with transaction.atomic():
        teams = {t.slug: t for t in Team.objects.filter(slug__in=named)}
        for missing in sorted(named - teams.keys()):
            logger.warning(
                "SIGNALBOX_OIDC_GROUP_ROLES names team %r, which does not exist", missing
            )
        held = {
            m.team.slug: m
            for m in Membership.objects.filter(user=user, team__in=teams.values()).select_related(
                "team", "user"
            )
        }
        for slug in sorted(teams):
            _set_role(user, teams[slug], held.get(slug), wanted.get(slug))
        admin_grants = [g for g in grants if g.is_platform_admin]
        if admin_grants:
            _set_platform_admin(user, any(g.group in members_of for g in admin_grants))


def _set_role(user: User, team: Team, held: Membership | None, role: str | None) -> None:
    data: dict[str, Any]
    if role is not None and held is None:
        data = {"team": team.slug, "user": user.get_username(), "role": role}
        serializer = MembershipSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        changes.create(serializer, actor=ACTOR, events=MEMBERSHIP_EVENTS)
    elif role is not None and held is not None and held.role != role:
        serializer = MembershipSerializer(held, data={"role": role}, partial=True)
        serializer.is_valid(raise_exception=True)
        changes.update(serializer, actor=ACTOR, events=MEMBERSHIP_EVENTS)
    elif role is None and held is not None:
        # The identity provider is the authority here, even over a team's last owner: someone
        # who left the group must not keep the role. Platform admins can still manage it.
        changes.delete(held, actor=ACTOR, events=MEMBERSHIP_EVENTS)


def _set_platform_admin(user: User, admin: bool) -> None:
    if user.is_superuser == admin and user.is_staff == admin:
        return
    user.is_superuser = user.is_staff = admin
    user.save(update_fields=["is_superuser", "is_staff"])
    action = AccountEvent.ADMIN_GRANTED if admin else AccountEvent.ADMIN_REVOKED
    verb = "now" if admin else "no longer"
    publish(
        action,
        actor=ACTOR,
        subject=user,
        message=f"{user.get_username()} is {verb} a platform admin (identity-provider groups)",
    )
