"""Single sign-on through the browser, at a real OpenID Connect provider started here
(django-oauth-toolkit with RS256 keys, in its own process and database): nothing mocked."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model

from catalog.choices import MembershipEvent, Role
from catalog.models import Membership, Team
from controlplane.models import Event
from identity.choices import AccountEvent
from identity.models import SsoIdentity
from identity.tests.conftest import IdentityProvider, Person, open_tab

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from controlplane.tests.browser import AsgiServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADA = Person("ada", "idp-pw-ada", "ada@example.com", ["payments-oncall", "staff"], "Ada")


def sign_in_at_provider(page: Page, provider: IdentityProvider, person: Person) -> None:
    page.goto("/login/")
    page.get_by_role("button", name="Sign in with SSO").click()
    page.wait_for_url(lambda url: url.startswith(provider.url + "/accounts/login/"))
    page.get_by_label("Corporate username").fill(person.username)
    page.get_by_label("Corporate password").fill(person.password)
    page.get_by_role("button", name="Continue").click()


def test_sso_signs_in_with_the_mapped_team_role(
    chromium: Browser, identity_provider: IdentityProvider, sso_server: AsgiServer
) -> None:
    # given teams payments and search, and Ada at the provider in payments-oncall
    Team.objects.create(slug="payments", name="Payments")
    Team.objects.create(slug="search", name="Search")
    identity_provider.start(sso_server.url + "/oidc/callback/", [ADA])
    page = open_tab(chromium, sso_server.url)
    # when she signs in at the provider and allows Signalbox
    sign_in_at_provider(page, identity_provider, ADA)
    page.get_by_role("heading", name="Allow Signalbox to sign you in?").wait_for()
    assert "The groups you are in" in page.content()
    page.get_by_role("button", name="Allow").click()
    # then she lands on the dashboard, signed in, a deployer of payments
    page.wait_for_url(sso_server.url + "/")
    assert page.locator(".sb-user-name").inner_text() == "ada"
    session = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    assert abs(session["expires"] - (time.time() + 12 * 3600)) < 600  # SSO_SESSION_HOURS
    ada = get_user_model().objects.get(username="ada")
    assert not ada.has_usable_password()
    assert (ada.email, ada.first_name, ada.is_superuser) == ("ada@example.com", "Ada", False)
    assert list(Membership.objects.filter(user=ada).values_list("team__slug", "role")) == [
        ("payments", Role.DEPLOYER)
    ]
    identity = SsoIdentity.objects.get(user=ada)
    assert (identity.issuer, identity.groups) == (identity_provider.issuer, ADA.groups)
    actions = set(Event.objects.values_list("action", flat=True))
    assert {AccountEvent.SSO_LINKED, MembershipEvent.CREATED} <= actions


def test_the_next_sso_login_applies_changed_groups(
    chromium: Browser, identity_provider: IdentityProvider, sso_server: AsgiServer
) -> None:
    # given Ada was an owner of search and a platform admin, by an earlier mapping
    Team.objects.create(slug="payments", name="Payments")
    search = Team.objects.create(slug="search", name="Search")
    ada = get_user_model().objects.create_user("ada", is_superuser=True, is_staff=True)
    ada.set_unusable_password()
    ada.save()
    Membership.objects.create(user=ada, team=search, role=Role.OWNER)
    identity_provider.start(sso_server.url + "/oidc/callback/", [ADA])
    SsoIdentity.objects.create(
        user=ada, issuer=identity_provider.issuer, subject="1", last_login_at="2026-01-01T00:00Z"
    )
    page = open_tab(chromium, sso_server.url)
    # when she signs in, now only in payments-oncall
    sign_in_at_provider(page, identity_provider, ADA)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(sso_server.url + "/")
    # then the same account, search and platform admin gone, payments added
    ada.refresh_from_db()
    assert not ada.is_superuser and not ada.is_staff
    roles = list(Membership.objects.filter(user=ada).values_list("team__slug", "role"))
    assert roles == [("payments", Role.DEPLOYER)]
    assert get_user_model().objects.filter(username__startswith="ada").count() == 1
    assert Event.objects.filter(action=AccountEvent.ADMIN_REVOKED).count() == 1


def test_a_break_glass_admin_signs_in_locally_beside_sso(
    chromium: Browser, identity_provider: IdentityProvider, sso_server: AsgiServer
) -> None:
    # given a local platform admin
    get_user_model().objects.create_superuser("root", password="pw-root-break-glass")
    page = open_tab(chromium, sso_server.url)
    # when the login page is opened, the SSO button leads; the local form is one click away
    page.goto("/login/")
    assert page.get_by_role("button", name="Sign in with SSO").is_visible()
    assert not page.get_by_label("Username").is_visible()
    page.get_by_text("Sign in with a local account").click()
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("pw-root-break-glass")
    page.get_by_role("button", name="Log in").click()
    # then
    page.wait_for_url(sso_server.url + "/")
    assert page.get_by_role("link", name="Admin").is_visible()


def test_sso_refused_by_the_user_lands_on_the_login_page_saying_so(
    chromium: Browser, identity_provider: IdentityProvider, sso_server: AsgiServer
) -> None:
    # given
    identity_provider.start(sso_server.url + "/oidc/callback/", [ADA])
    page = open_tab(chromium, sso_server.url)
    # when Ada cancels at the consent page
    sign_in_at_provider(page, identity_provider, ADA)
    page.get_by_role("button", name="Cancel").click()
    # then nobody is signed in and the login page says why
    page.wait_for_url(lambda url: url.startswith(sso_server.url + "/login/"))
    assert "Single sign-on did not complete" in page.content()
    assert not get_user_model().objects.filter(username="ada").exists()
