"""Who may do what: roles for people, scopes for tokens, one rule per API view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from catalog.choices import ROLE_RANK, Role, Scope
from catalog.models import ApiToken, Membership, Service, Team

# The least role a person needs in the owning team for each scope.
ROLE_FOR_SCOPE = {Scope.WRITE: Role.OWNER, Scope.DEPLOY: Role.DEPLOYER, Scope.REPORT: Role.DEPLOYER}

# A pseudo-scope for a view's `scopes` map: platform admins (superusers, signed in) only.
ADMIN = "admin"


class TeamOwned(Protocol):
    def owning_team(self) -> Team: ...


@dataclass(frozen=True)
class Access:
    """The caller of a request: a person (session) or a team token."""

    user: AbstractBaseUser | AnonymousUser
    token: ApiToken | None = None

    @classmethod
    def of(cls, request: Any) -> Access:
        token = request.auth if isinstance(getattr(request, "auth", None), ApiToken) else None
        return cls(user=request.user, token=token)

    @property
    def is_authenticated(self) -> bool:
        return self.token is not None or bool(self.user.is_authenticated)

    @property
    def is_admin(self) -> bool:
        return self.token is None and bool(getattr(self.user, "is_superuser", False))

    def can(self, scope: str, team: Team | None = None, service: Service | None = None) -> bool:
        """May this caller act with `scope` on things of `team` (None: platform-wide things)?"""
        if self.token is not None:
            return self._token_can(self.token, scope, team, service)
        if not self.user.is_authenticated:
            return False
        if scope == Scope.READ or self.is_admin:
            return True
        if team is None:
            return False
        membership = Membership.objects.filter(user_id=self.user.pk, team=team).first()
        return membership is not None and membership.allows(ROLE_FOR_SCOPE[Scope(scope)])

    @staticmethod
    def _token_can(token: ApiToken, scope: str, team: Team | None, service: Service | None) -> bool:
        if not token.has_scope(scope):
            return False
        if scope == Scope.READ:
            return True
        if team is None or token.team_id != team.pk:
            return False
        return token.service_id is None or (service is not None and token.service_id == service.pk)

    def teams_with(self, scope: str) -> list[Team]:
        """Teams where this caller holds `scope` (for forms and filters)."""
        if self.token is not None:
            return [self.token.team] if self.token.has_scope(scope) else []
        if self.is_admin:
            return list(Team.objects.all())
        if not self.user.is_authenticated:
            return []
        needed = ROLE_RANK[ROLE_FOR_SCOPE[Scope(scope)]]
        roles = [r for r, rank in ROLE_RANK.items() if rank >= needed]
        return list(
            Team.objects.filter(memberships__user_id=self.user.pk, memberships__role__in=roles)
        )

    def label(self) -> str:
        if self.token is not None:
            return f"token:{self.token.team.slug}/{self.token.name}"
        return str(self.user.get_username()) if self.user.is_authenticated else "anonymous"

    def why_not(self, scope: str, team: Team | None, service: Service | None = None) -> str:
        """A sentence telling the caller why `can(scope, team, service)` said no."""
        admins_only = "only platform admins may change this"
        if self.token is None:
            if scope == ADMIN or team is None:
                return admins_only
            role = ROLE_FOR_SCOPE[Scope(scope)]
            return f"'{scope}' on team '{team.slug}' needs the {role} role in that team"
        if scope == ADMIN:
            return admins_only + " (signed in, not with a token)"
        if not self.token.has_scope(scope):
            held = ", ".join(self.token.scopes)
            return f"this token lacks the '{scope}' scope (it has: {held})"
        if team is None:
            return admins_only
        if self.token.team_id != team.pk:
            return f"this token belongs to team '{self.token.team.slug}', not '{team.slug}'"
        bound = self.token.service.slug if self.token.service else ""
        return f"this token may only act for service '{bound}'"


class DenyWithoutRule(BasePermission):
    """The default: an API view that declares no permission rule answers nobody."""

    message = "this endpoint has no permission rule; refusing by default"

    def has_permission(self, request: Request, view: Any) -> bool:
        return False


class ScopeRule(BasePermission):
    """Views declare `scopes = {"GET": "read", "POST": "write", ...}`.

    Reads need authentication (or a `read` token). Writes are checked on the object's
    owning team; for creation the view's `team_for_create(request)` names the team.
    The pseudo-scope `ADMIN` admits platform admins only; a view with
    `people_only = True` refuses API tokens altogether (token management, for one).
    """

    message = "you may not do this"

    def _scope(self, request: Request, view: Any) -> str | None:
        scopes = getattr(view, "scopes", {})
        return scopes.get(request.method, scopes.get("*"))

    def _deny(self, reason: str) -> bool:
        self.message = reason  # DRF reads it after has_permission answers False
        return False

    def has_permission(self, request: Request, view: Any) -> bool:
        access = Access.of(request)
        scope = self._scope(request, view)
        if not access.is_authenticated:
            return False  # DRF answers 401 with the WWW-Authenticate challenge
        if scope is None:
            if (request.method or "").lower() not in view.http_method_names:
                return True  # the view answers 405 Method Not Allowed itself
            return self._deny(f"this endpoint declares no scope for {request.method}")
        if access.token is not None and getattr(view, "people_only", False):
            return self._deny("API tokens cannot use this endpoint; sign in as a person")
        if scope == ADMIN:
            return access.is_admin or self._deny(access.why_not(ADMIN, None))
        if scope == Scope.READ:
            return access.can(Scope.READ) or self._deny(access.why_not(Scope.READ, None))
        if access.token is not None and not access.token.has_scope(scope):
            return self._deny(access.why_not(scope, access.token.team))
        if getattr(view, "detail_action", False) or _is_detail(view):
            return True  # decided per object in has_object_permission
        team_for_create = getattr(view, "team_for_create", None)
        if team_for_create is None:
            return access.can(scope, None) or self._deny(access.why_not(scope, None))
        team, service = team_for_create(request)
        if team is None:
            return True  # the serializer reports the missing/unknown field as a 400
        return access.can(scope, team, service) or self._deny(access.why_not(scope, team, service))

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        access = Access.of(request)
        scope = self._scope(request, view)
        if scope is None:
            return False
        if scope == ADMIN:
            return access.is_admin or self._deny(access.why_not(ADMIN, None))
        if scope == Scope.READ:
            return access.can(Scope.READ)
        team = obj.owning_team() if hasattr(obj, "owning_team") else None
        service = obj if isinstance(obj, Service) else getattr(obj, "service", None)
        service = service if isinstance(service, Service) else None
        return access.can(scope, team, service) or self._deny(access.why_not(scope, team, service))


def _is_detail(view: Any) -> bool:
    kwarg = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", None)
    return bool(kwarg and kwarg in getattr(view, "kwargs", {}))
