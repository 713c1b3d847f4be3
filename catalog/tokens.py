"""Issuing and revoking team API tokens, the same way from the API and the team page: one
audited event each; the plain value leaves only in the issuing answer."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from catalog.choices import TokenEvent
from catalog.models import ApiToken
from controlplane.events import Actor, publish


def issue(serializer: Any, *, actor: Actor, created_by: Any) -> tuple[ApiToken, str]:
    """Issue the token a validated TokenIssueSerializer describes; (token, plain value).
    A name already used by an active token of the team raises its 409 (`Duplicate`)."""
    with transaction.atomic():
        token, plain = serializer.issue(created_by=created_by)
        publish(
            TokenEvent.ISSUED,
            actor=actor,
            subject=token,
            message=f"token {token} issued with {', '.join(token.scopes)}",
            payload={"scopes": token.scopes},
        )
    return token, plain


def revoke(token: ApiToken, *, actor: Actor) -> bool:
    """Revoke a token; False (and no event) when it already was."""
    if token.revoked_at is not None:
        return False
    with transaction.atomic():
        token.revoke()
        publish(TokenEvent.REVOKED, actor=actor, subject=token, message=f"token {token} revoked")
    return True
