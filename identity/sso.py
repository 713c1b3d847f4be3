"""Single sign-on with OpenID Connect: mozilla-django-oidc, told where the provider is.

The provider's endpoints come from its discovery document unless set one by one; an SSO
login signs in to the account linked to the provider's subject (issuer + `sub`), making it
on the first login, and applies the group mapping (identity/group_roles.py) every time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation, ValidationError
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from controlplane.events import publish
from identity import group_roles
from identity.choices import AccountEvent
from identity.models import SsoIdentity

logger = logging.getLogger(__name__)

# mozilla-django-oidc setting -> the provider metadata field it comes from.
_SETTING_FIELDS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
DISCOVERY_TTL_SECONDS = 3600  # providers rotate keys, not endpoints; the JWKS is fetched per login
_discovered: dict[str, Any] = {}
_lock = threading.Lock()


class ProviderUnavailable(Exception):
    """The identity provider's discovery document could not be read."""


def provider_metadata() -> dict[str, str]:
    """The endpoints and issuer: the ones set in the environment, the rest discovered."""
    configured = {k: v for k, v in settings.SIGNALBOX_OIDC_ENDPOINTS.items() if v}
    if len(configured) == len(settings.SIGNALBOX_OIDC_ENDPOINTS):
        return {**configured, "issuer": settings.SIGNALBOX_OIDC_ISSUER}
    return {**_discover(), **configured}


def _discover() -> dict[str, str]:
    with _lock:
        if _discovered and time.monotonic() < _discovered["expires"]:
            return dict(_discovered["metadata"])
        url = settings.SIGNALBOX_OIDC_ISSUER + "/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            metadata = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable(f"{url}: {exc}") from exc
        if metadata.get("issuer", "").rstrip("/") != settings.SIGNALBOX_OIDC_ISSUER:
            raise ProviderUnavailable(
                f"{url} names issuer {metadata.get('issuer')!r}, not SIGNALBOX_OIDC_ISSUER "
                f"{settings.SIGNALBOX_OIDC_ISSUER!r}"
            )
        _discovered.update(metadata=metadata, expires=time.monotonic() + DISCOVERY_TTL_SECONDS)
        return dict(metadata)


def _setting(attr: str, *default: Any) -> Any:
    field = _SETTING_FIELDS.get(attr)
    if field is not None:
        value = provider_metadata().get(field)
        if not value:
            raise ImproperlyConfigured(f"the identity provider publishes no {field}")
        return value
    return getattr(settings, attr, *default)


class Backend(OIDCAuthenticationBackend):
    """Signs in the account linked to the provider's subject; checks issuer and audience."""

    get_settings = staticmethod(_setting)

    def __init__(self) -> None:
        # mozilla-django-oidc reads the endpoints here, and Django makes a backend for every
        # login, local passwords too: asking the provider now would make a provider outage
        # break the break-glass login. They are read when an SSO callback needs them.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return str(_setting("OIDC_OP_TOKEN_ENDPOINT"))

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return str(_setting("OIDC_OP_USER_ENDPOINT"))

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return str(_setting("OIDC_OP_JWKS_ENDPOINT"))

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        issuer = provider_metadata().get("issuer", "").rstrip("/")
        if str(payload.get("iss", "")).rstrip("/") != issuer:
            raise SuspiciousOperation(f"ID token issuer {payload.get('iss')!r} is not {issuer!r}")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("ID token is not meant for this client (aud)")
        self.id_claims = payload
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: Any) -> dict[str, Any]:
        # Some providers put groups in the ID token only, others in userinfo only.
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo is about another subject than the ID token")
        return {**payload, **userinfo}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub")) and bool(self._username(claims))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        users = get_user_model().objects
        linked = users.filter(
            sso_identities__issuer=settings.SIGNALBOX_OIDC_ISSUER,
            sso_identities__subject=claims["sub"],
        )
        if linked.exists() or not settings.SIGNALBOX_OIDC_LINK_BY_EMAIL:
            return linked
        if not (claims.get("email") and claims.get("email_verified") is True):
            return users.none()
        return users.filter(email__iexact=claims["email"], sso_identities__isnull=True)

    def create_user(self, claims: dict[str, Any]) -> User:
        username = self._username(claims)
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self._refuse(
                f"An account named {username!r} already exists here and is not linked to "
                "your identity provider; ask a platform admin (docs/authentication.md)."
            )
        with transaction.atomic():
            user = user_model(username=username)
            user.set_unusable_password()  # signs in through the provider only
            self._copy_profile(user, claims)
            user.save()
            return self._signed_in(user, claims, first=True)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        with transaction.atomic():
            self._copy_profile(user, claims)
            user.save(update_fields=["email", "first_name", "last_name"])
            return self._signed_in(user, claims, first=False)

    def _signed_in(self, user: User, claims: dict[str, Any], first: bool) -> User:
        groups = _groups(claims)
        identity, made = SsoIdentity.objects.update_or_create(
            issuer=settings.SIGNALBOX_OIDC_ISSUER,
            subject=claims["sub"],
            defaults={"user": user, "groups": groups, "last_login_at": timezone.now()},
        )
        if made:
            how = "made" if first else "linked"
            publish(
                AccountEvent.SSO_LINKED,
                actor=group_roles.ACTOR,
                subject=user,
                message=f"account {user.get_username()} {how} for SSO subject {identity.subject}",
            )
        group_roles.apply(user, groups)
        return user

    @staticmethod
    def _copy_profile(user: User, claims: dict[str, Any]) -> None:
        user.email = str(claims.get("email") or user.email)[:254]
        user.first_name = str(claims.get("given_name") or user.first_name)[:150]
        user.last_name = str(claims.get("family_name") or user.last_name)[:150]

    def _username(self, claims: dict[str, Any]) -> str:
        username = str(claims.get(settings.SIGNALBOX_OIDC_USERNAME_CLAIM) or "").strip()
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError:
            self._refuse(
                f"Your identity provider sent no usable {settings.SIGNALBOX_OIDC_USERNAME_CLAIM!r}"
                f" claim ({username!r}); ask a platform admin (SIGNALBOX_OIDC_USERNAME_CLAIM)."
            )
        return username[:150]

    def _refuse(self, reason: str) -> Any:
        self.request.sso_refusal = reason  # shown on the login page by CallbackView
        raise SuspiciousOperation(reason)


def _groups(claims: dict[str, Any]) -> list[str]:
    value = claims.get(settings.SIGNALBOX_OIDC_GROUPS_CLAIM) or []
    if isinstance(value, str):
        value = [value]
    return sorted({str(group) for group in value if isinstance(group, str | int)})


class AuthenticateView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider; says so on the login page when it is unreachable."""

    get_settings = staticmethod(_setting)

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
            self.unavailable = ""
        except (ProviderUnavailable, ImproperlyConfigured) as exc:
            logger.error("single sign-on unavailable: %s", exc)
            self.unavailable = str(exc)

    def get(self, request: Any) -> HttpResponse:
        if self.unavailable:
            messages.error(request, "Single sign-on is unavailable: the identity provider "
                           "did not answer. Try again, or sign in with a local account.")
            return HttpResponseRedirect(reverse("login"))
        return super().get(request)  # type: ignore[no-any-return]


class CallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back; a refused login lands on the login page saying why."""

    get_settings = staticmethod(_setting)

    def get(self, request: Any) -> HttpResponse:
        try:
            return super().get(request)  # type: ignore[no-any-return]
        except (SuspiciousOperation, requests.RequestException, ProviderUnavailable) as exc:
            # A replayed or forged callback, a token the provider did not sign for us, or
            # the provider failing mid-login: nobody is signed in.
            logger.warning("single sign-on callback refused: %s", exc)
            return self.login_failure()

    def login_success(self) -> HttpResponse:
        response: HttpResponse = super().login_success()
        # The provider decides again (disabled people, changed groups) at least this often.
        self.request.session.set_expiry(settings.SIGNALBOX_OIDC_SESSION_HOURS * 3600)
        return response

    def login_failure(self) -> HttpResponse:
        reason = getattr(self.request, "sso_refusal", "") or (
            "Single sign-on did not complete. Try again, or ask a platform admin."
        )
        messages.error(self.request, reason)
        return HttpResponseRedirect(reverse("login"))
