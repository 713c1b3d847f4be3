"""Inviting an email address into a team and cancelling the invitation, the same way from
the API and the team page: the invitation row, its audited event and its email, or none."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework import exceptions

from catalog.choices import InvitationEvent
from catalog.models import Invitation, Membership, Team
from controlplane.events import Actor, publish


def invite(team: Team, email: str, role: str, *, actor: Actor, invited_by: Any) -> Invitation:
    """Invite `email` into `team` as `role` and mail the link. A member already, or a
    pending invitation of the address, raises ValidationError on `email`; an email the
    mail server refuses raises its OSError, and then nothing is saved."""
    email = email.lower()
    member = Membership.objects.filter(team=team, user__email__iexact=email).first()
    if member is not None:
        raise exceptions.ValidationError(
            {"email": [f"{email} is already a member of {team.slug} (as {member.role})."]}
        )
    plain = Invitation.new_token()
    with transaction.atomic():
        open_ones = Invitation.objects.select_for_update().filter(
            team=team, email=email, accepted_at__isnull=True, cancelled_at__isnull=True
        )
        for old in open_ones:
            if old.is_pending:
                raise exceptions.ValidationError(
                    {
                        "email": [
                            f"{email} already has an invitation, valid until "
                            f"{old.expires_at:%Y-%m-%d %H:%M} UTC; cancel it to send a new one."
                        ]
                    }
                )
            old.cancelled_at = timezone.now()  # expired: make room for the new one
            old.save(update_fields=["cancelled_at"])
        invitation = Invitation.objects.create(
            team=team,
            email=email,
            role=role,
            token_hash=Invitation.hash_token(plain),
            invited_by=invited_by if getattr(invited_by, "is_authenticated", False) else None,
            expires_at=timezone.now() + Invitation.lifetime(),
        )
        publish(
            InvitationEvent.SENT,
            actor=actor,
            subject=invitation,
            team=team,
            message=f"{email} invited to {team.slug} as {role}",
            payload={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
        )
        # Inside the transaction: a refused email rolls the invitation back with it.
        _send(invitation, plain)
    return invitation


def cancel(invitation: Invitation, *, actor: Actor) -> bool:
    """Cancel an open invitation (its link stops working); False, and no event, when it
    was accepted or cancelled already."""
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.accepted_at is not None or locked.cancelled_at is not None:
            return False
        locked.cancelled_at = timezone.now()
        locked.save(update_fields=["cancelled_at"])
        publish(
            InvitationEvent.CANCELLED,
            actor=actor,
            subject=locked,
            team=locked.team,
            message=f"invitation of {locked.email} to {locked.team.slug} cancelled",
            payload={"email": locked.email},
        )
    invitation.cancelled_at = locked.cancelled_at
    return True


def _send(invitation: Invitation, plain: str) -> None:
    link = settings.SIGNALBOX_BASE_URL.rstrip("/") + reverse("dashboard:invitation", args=[plain])
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "Signalbox"
    team = invitation.team
    send_mail(
        subject=f"Join {team.name} on Signalbox",
        message=(
            f"{inviter} invites you to join the team {team.name} ({team.slug}) on Signalbox "
            f"as {invitation.role}.\n\n"
            f"Accept: {link}\n\n"
            f"The link works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC. "
            "If you did not expect it, ignore this email.\n"
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )
