"""API authentication by team token: `Authorization: Bearer sbx_<id>_<secret>`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from catalog.models import ApiToken


class TokenAuthentication(authentication.BaseAuthentication):
    """Authenticates a team API token; request.auth is the ApiToken, request.user anonymous."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        keyword, _, value = header.partition(" ")
        if keyword.lower() not in {"bearer", "token"}:
            return None
        value = value.strip()
        if not value:
            raise exceptions.AuthenticationFailed("Authorization header has no token after Bearer")
        token = ApiToken.find(value)
        if token is None:
            raise exceptions.AuthenticationFailed("token is unknown, revoked or expired")
        token.touch()
        return AnonymousUser(), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="signalbox"'
