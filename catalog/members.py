"""Changing who is in a team, the same way from the API and the team page: each change one
audited event, and a team never left without an owner."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework.serializers import BaseSerializer

from catalog.choices import MEMBERSHIP_EVENTS
from catalog.models import Membership
from controlplane import changes
from controlplane.events import Actor


def last_owner_reason(membership: Membership) -> str:
    return (
        f"{membership.user} is the last owner of {membership.team}; make someone else owner first"
    )


def change_role(serializer: BaseSerializer[Any], *, actor: Actor) -> Membership:
    """Save a validated MembershipSerializer's role change; demoting the team's last owner
    raises changes.Conflict and saves nothing (the row is locked against a racing change)."""
    membership = serializer.instance
    assert isinstance(membership, Membership)
    new_role = serializer.validated_data.get("role", membership.role)
    with transaction.atomic():
        _lock_owners(membership)
        if new_role != membership.role and membership.is_last_owner():
            raise changes.Conflict(last_owner_reason(membership))
        saved = changes.update(serializer, actor=actor, events=MEMBERSHIP_EVENTS)
    assert isinstance(saved, Membership)
    return saved


def remove(membership: Membership, *, actor: Actor) -> None:
    """Remove a member; the team's last owner raises changes.Conflict and stays."""
    with transaction.atomic():
        _lock_owners(membership)
        if membership.is_last_owner():
            raise changes.Conflict(last_owner_reason(membership))
        changes.delete(membership, actor=actor, events=MEMBERSHIP_EVENTS)


def _lock_owners(membership: Membership) -> None:
    # Two owners demoting each other at once must not both succeed: lock the team's rows.
    list(Membership.objects.select_for_update().filter(team_id=membership.team_id))
