"""The SSO backend's own decisions: which account a login gets, and which ID tokens it takes.

ID tokens here are signed with a key made by the test and checked against a JWKS served
over HTTP on loopback, as a provider serves it; the browser tests cover the whole flow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.test import RequestFactory
from jwt.algorithms import RSAAlgorithm

from identity import sso
from identity.models import SsoIdentity

pytestmark = pytest.mark.django_db
ISSUER = "https://login.example.com/realms/eng"
ADA = {"sub": "u-1", "preferred_username": "ada", "given_name": "Ada", "email": "ada@example.com",
       "email_verified": True, "groups": ["staff"]}  # fmt: skip
CLIENT_ID = "signalbox"


@pytest.fixture
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Provider:
    """The provider's JWKS and userinfo, served over HTTP on loopback."""

    url: str
    userinfo: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def provider(signing_key: rsa.RSAPrivateKey) -> Iterator[Provider]:
    jwk = {**json.loads(RSAAlgorithm.to_jwk(signing_key.public_key())), "kid": "k1"}
    jwks = {"keys": [{**jwk, "alg": "RS256", "use": "sig"}]}
    served = Provider(url="")

    class Endpoints(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(jwks if self.path == "/jwks" else served.userinfo).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoints)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield served
    server.shutdown()
    thread.join(5)


@pytest.fixture
def oidc(settings: Any, provider: Provider) -> Any:
    settings.SIGNALBOX_OIDC_ISSUER = ISSUER
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "s3cret"
    settings.SIGNALBOX_OIDC_ENDPOINTS = {
        "authorization_endpoint": ISSUER + "/auth",
        "token_endpoint": ISSUER + "/token",
        "userinfo_endpoint": provider.url + "/userinfo",
        "jwks_uri": provider.url + "/jwks",
    }
    settings.SIGNALBOX_OIDC_GROUP_ROLES = ""
    provider.userinfo.update(ADA)
    return settings


def backend() -> sso.Backend:
    instance = sso.Backend()
    instance.request = RequestFactory().get("/oidc/callback/")
    return instance


def id_token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "u-1", "nonce": "n", "iat": now,
               "exp": now + 300, **claims}  # fmt: skip
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def test_a_token_from_the_provider_for_this_client_is_taken(
    oidc: Any, signing_key: rsa.RSAPrivateKey
) -> None:
    payload = backend().verify_token(id_token(signing_key), nonce="n")
    assert payload["sub"] == "u-1"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.example.com"}, "issuer"),
        ({"aud": "another-app"}, "not meant for this client"),
        ({"aud": ["another-app", "more"]}, "not meant for this client"),
    ],
)
def test_a_token_for_another_issuer_or_client_is_refused(
    oidc: Any, signing_key: rsa.RSAPrivateKey, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(SuspiciousOperation, match=reason):
        backend().verify_token(id_token(signing_key, **claims), nonce="n")


def test_a_token_signed_with_another_key_is_refused(oidc: Any) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SuspiciousOperation, match="verification failed"):
        backend().verify_token(id_token(stranger), nonce="n")


def test_a_replayed_token_with_another_nonce_is_refused(
    oidc: Any, signing_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(SuspiciousOperation, match="Nonce"):
        backend().verify_token(id_token(signing_key), nonce="other")


def log_in(sign_in: sso.Backend) -> Any:
    """The account decision of an SSO login whose ID token named subject u-1."""
    return sign_in.get_or_create_user("access-token", "id-token", {"sub": "u-1"})


def test_the_first_login_makes_an_account_without_a_password(oidc: Any) -> None:
    user = log_in(backend())
    assert user.username == "ada" and not user.has_usable_password()
    assert (user.email, user.first_name) == ("ada@example.com", "Ada")
    assert SsoIdentity.objects.get(user=user).groups == ["staff"]
    assert log_in(backend()).pk == user.pk  # the next login finds it by subject


def test_userinfo_about_another_subject_is_refused(oidc: Any, provider: Provider) -> None:
    provider.userinfo["sub"] = "u-2"
    with pytest.raises(SuspiciousOperation, match="another subject"):
        log_in(backend())


def test_a_local_account_with_the_same_name_is_not_taken_over(oidc: Any) -> None:
    # given a local account named ada, with ada's email
    get_user_model().objects.create_user("ada", "ada@example.com", "local-pw-ada-1")
    sign_in = backend()
    # when the provider's ada signs in, linking by email off (the default)
    with pytest.raises(SuspiciousOperation):
        log_in(sign_in)
    # then refused, saying why
    assert "already exists here and is not linked" in sign_in.request.sso_refusal
    assert not SsoIdentity.objects.exists()


def test_linking_by_email_links_a_verified_email_to_the_local_account(oidc: Any) -> None:
    # given
    oidc.SIGNALBOX_OIDC_LINK_BY_EMAIL = True
    local = get_user_model().objects.create_user("ada.l", "Ada@example.com", "local-pw-ada-1")
    # when
    linked = log_in(backend())
    # then the local account, which keeps its password for now
    assert linked.pk == local.pk and linked.has_usable_password()
    assert SsoIdentity.objects.get().user_id == local.pk


def test_linking_by_email_ignores_an_unverified_email(oidc: Any, provider: Provider) -> None:
    # given
    oidc.SIGNALBOX_OIDC_LINK_BY_EMAIL = True
    local = get_user_model().objects.create_user("ada.l", "ada@example.com", "local-pw-ada-1")
    provider.userinfo["email_verified"] = False
    # when
    user = log_in(backend())
    # then an account of its own: anyone can claim an unverified address
    assert user.pk != local.pk and user.username == "ada"
    assert not SsoIdentity.objects.filter(user=local).exists()


def test_an_unusable_username_claim_is_refused_saying_which(
    oidc: Any, provider: Provider
) -> None:
    provider.userinfo["preferred_username"] = "ada lovelace"
    sign_in = backend()
    with pytest.raises(SuspiciousOperation):
        log_in(sign_in)
    assert "no usable 'preferred_username' claim" in sign_in.request.sso_refusal
