"""The dashboard's own events: invitations to join a team (accepting one is the
membership's own `membership.created`)."""

from __future__ import annotations

from controlplane.events import EventNames


class InvitationEvent(EventNames):
    FAMILY = "invitation."
    SENT = "invitation.sent"
    CANCELLED = "invitation.cancelled"
