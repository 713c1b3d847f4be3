"""The team page's settings in Debian's chromium: invite and join, roles, tokens, channels
and routes, each form's happy path and one bad input, at a phone's width too.

Real parts: the uvicorn server, PostgreSQL, an SMTP server (aiosmtpd) the server sends the
invitation through, and an HTTP receiver standing in for a webhook endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from alerts.models import Channel, Notification, Route
from alerts.tests.conftest import Mailbox, Receiver, free_port, serving
from catalog.choices import Role
from catalog.models import ApiToken, Membership
from controlplane.tests.browser import log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
TEAM = "/catalog/teams/payments/"
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def server_mailbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """A real SMTP server on loopback, named in the environment of the uvicorn started for
    the test (`own_asgi_server`), so the server's invitation emails arrive here."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(port))
    yield mailbox
    controller.stop()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with serving() as receiver:
        yield receiver


def wait_for_mail(mailbox: Mailbox, timeout: float = 10.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mailbox.messages:
            return str(mailbox.messages[0].content.decode())
        time.sleep(0.05)
    raise AssertionError("no email arrived")


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide at {PHONE['width']} px"


def test_an_owner_invites_by_email_on_a_phone_and_the_person_joins(
    world: Any, server_mailbox: Mailbox, own_asgi_server: Any, page: Page, chromium: Any
) -> None:
    page.set_viewport_size(PHONE)
    log_in(page, "owner", "pw-owner")
    page.goto(TEAM)
    no_sideways_scroll(page)
    # the invite form opens from the keyboard
    summary = page.get_by_text("Invite someone…")
    summary.focus()
    page.keyboard.press("Enter")
    email = page.get_by_label("Email")
    expect(email).to_be_visible()
    # a bad address: the reason next to the field, nothing sent
    email.fill("not-an-address")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#id_invite-email_error")).to_contain_text("valid email address")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    assert server_mailbox.messages == []
    # a good one, as deployer
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Role", exact=True).select_option("deployer")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".sb-message")).to_contain_text("Invitation sent to newcomer@example.com")
    expect(page.locator("#team-members")).to_contain_text("newcomer@example.com as Deployer")
    text = wait_for_mail(server_mailbox)
    link = re.search(r"https?://[^/\s]+(/invitations/[A-Za-z0-9_-]+/)", text)
    assert link, text
    # the invited person, not signed in, opens the link on their phone and creates an account
    other = chromium.new_context(base_url=own_asgi_server.url, viewport=PHONE)
    tab = other.new_page()
    tab.goto(link.group(1))
    expect(tab.get_by_role("heading", name="Join Payments")).to_be_visible()
    tab.get_by_label("Username").fill("newcomer")
    tab.get_by_label("Password", exact=True).fill("short")
    tab.get_by_label("Password confirmation").fill("short")
    tab.get_by_role("button", name="Create account and join").click()
    expect(tab.locator("#id_password2_error")).to_contain_text("too short")
    tab.get_by_label("Password", exact=True).fill("a long Passphrase 1")
    tab.get_by_label("Password confirmation").fill("a long Passphrase 1")
    tab.get_by_role("button", name="Create account and join").click()
    expect(tab.locator(".sb-message")).to_contain_text("Welcome to Payments: you are deployer")
    assert tab.url.endswith(TEAM)
    other.close()
    member = Membership.objects.get(user__username="newcomer")
    assert member.role == Role.DEPLOYER and member.user.email == "newcomer@example.com"


def test_an_owner_changes_a_role_and_cannot_demote_the_last_owner(world: Any, page: Page) -> None:
    log_in(page, "owner", "pw-owner")
    page.goto(TEAM)
    page.get_by_label("Role of viewer").select_option("deployer")
    page.get_by_role("button", name="Change role of viewer").click()
    expect(page.locator(".sb-message")).to_contain_text("viewer is now deployer of payments")
    assert Membership.objects.get(user=world.viewer).role == Role.DEPLOYER
    page.get_by_label("Role of owner").select_option("viewer")
    page.get_by_role("button", name="Change role of owner").click()
    owner = Membership.objects.get(user=world.owner)
    expect(page.locator(f"#id_m{owner.pk}-role_error")).to_contain_text(
        "owner is the last owner of payments; make someone else owner first"
    )
    assert Membership.objects.get(user=world.owner).role == Role.OWNER


def test_a_token_is_shown_once_with_a_copy_button_then_revoked(world: Any, page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, "owner", "pw-owner")
    page.goto(TEAM)
    page.get_by_text("Create a token…").click()
    form = page.locator("#team-token-new")
    form.get_by_label("Name").fill("checkout-prod")
    # no scope ticked: said next to the scopes
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#id_token-scopes_error")).to_contain_text("tick at least one scope")
    form = page.locator("#team-token-new")
    form.get_by_label("Name").fill("checkout-prod")
    form.get_by_label("Register instances, send heartbeats and circuit reports").check()
    form.get_by_label("Service").select_option("checkout")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token checkout-prod created")).to_be_visible()
    value = page.get_by_label(re.compile("The token")).input_value()
    token = ApiToken.objects.get(name="checkout-prod")
    assert value.startswith(f"sbx_{token.key_id}_") and token.key_hash == ApiToken.hash_secret(
        value
    )
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == value
    # back on the team page the value is nowhere; the token is listed, never used
    page.get_by_role("button", name=re.compile("Done")).click()
    expect(page.locator(f"#team-token-{token.pk}")).to_contain_text("never")
    assert value not in page.content()
    page.get_by_role("button", name="Revoke checkout-prod").click()
    expect(page.locator(".sb-message")).to_contain_text("Token checkout-prod revoked")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_an_owner_adds_a_channel_sends_a_test_and_routes_pages_to_it(
    world: Any, page: Page, hook: Receiver
) -> None:
    log_in(page, "owner", "pw-owner")
    page.goto(TEAM)
    page.get_by_text("Add a channel…").click()
    form = page.locator("#team-channel-new")
    form.get_by_label("Name").fill("hooks")
    form.get_by_label("Kind").select_option("webhook")
    form.get_by_role("button", name="Add channel").click()
    expect(page.locator("#id_channel-url_error")).to_have_text("give the URL to POST to")
    form = page.locator("#team-channel-new")
    form.get_by_label("URL").fill(hook.url("/hook"))
    form.get_by_role("button", name="Add channel").click()
    expect(page.locator(".sb-message")).to_contain_text("Channel 'hooks' created")
    channel = Channel.objects.get(name="hooks")
    page.get_by_role("button", name="Send a test to hooks").click()
    expect(page.locator(".sb-message")).to_contain_text("Test sent to 'hooks' (HTTP 200)")
    assert hook.wait_for("/hook", 1)[0].json()["action"] == "test"
    assert Notification.objects.filter(channel=channel, state="delivered").exists()
    # a route: a bad escalation level first, said next to it
    page.get_by_text("Add a route…").click()
    route_form = page.locator("#team-route-new")
    route_form.get_by_label("Escalation level").fill("12")
    route_form.get_by_role("button", name="Add route").click()
    expect(page.locator("#id_route-escalation_level_error")).to_contain_text(
        "less than or equal to 9"
    )
    route_form = page.locator("#team-route-new")
    route_form.get_by_label("Escalation level").fill("0")
    route_form.get_by_role("button", name="Add route").click()
    expect(page.locator(".sb-message")).to_contain_text("Route added")
    expect(page.locator("#team-routes")).to_contain_text("Page → hooks (level 0")
    assert Route.objects.get().channel == channel


def test_a_viewer_sees_the_settings_without_controls(world: Any, page: Page) -> None:
    Channel.objects.create(team=world.team, name="ops", kind="email", config={"to": ["a@b.co"]})
    log_in(page, "viewer", "pw-viewer")
    page.goto(TEAM)
    expect(page.locator("#team-members")).to_contain_text("deployer")
    expect(page.locator("#team-channels")).to_contain_text("ops")
    assert page.locator("#team-tokens").count() == 0
    assert page.get_by_role("button", name=re.compile("Invite|Remove|Send a test|Add")).count() == 0


def test_an_owner_adds_a_heartbeat_runs_its_crontab_line_and_sees_the_ping(
    world: Any, page: Page, asgi_server: Any
) -> None:
    import shutil
    import subprocess

    from health.models import Heartbeat

    log_in(page, "owner", "pw-owner")
    page.goto("/catalog/services/checkout/")
    page.get_by_role("link", name="Heartbeats").click()
    page.get_by_text("Add a heartbeat…").click()
    page.get_by_label("Name").fill("nightly-backup")
    page.get_by_label("Schedule").select_option("cron")
    page.get_by_label("Cron expression").fill("every night")
    page.get_by_role("button", name="Add heartbeat").click()
    expect(page.locator("#id_hb-cron_error")).to_contain_text("5-field cron expression")
    page.get_by_label("Cron expression").fill("0 3 * * *")
    page.get_by_role("button", name="Add heartbeat").click()
    expect(page.get_by_role("heading", name=re.compile("nightly-backup"))).to_be_visible()
    heartbeat = Heartbeat.objects.get(name="nightly-backup")
    # the crontab line, as shown, run by sh (the base URL is the test server's, the job fails)
    line = page.locator("#snippet-crontab").inner_text()
    assert line.startswith("0 3 * * * ")
    command = line.removeprefix("0 3 * * * ").replace(
        "/usr/local/bin/your-job", "sh -c 'echo disk full; exit 4'"
    )
    command = re.sub(r"https?://[^/]+/api/", f"{asgi_server.url}/api/", command)
    assert shutil.which("curl")
    subprocess.run(["sh", "-c", command], check=True, timeout=20)
    page.reload()
    expect(page.locator("#last-ping")).to_contain_text("Exit code4")
    expect(page.locator("#last-log")).to_contain_text("disk full")
    expect(page.locator("#heartbeat-status")).to_contain_text("failed with exit code 4")
    # the ping history lists it, the log tail folded away until asked for
    ping_row = page.locator("#pings tbody tr").first
    expect(ping_row).to_contain_text("Fail")
    expect(ping_row).to_contain_text("curl/")  # the user agent the crontab line sent
    expect(ping_row.locator("pre.sb-log")).to_be_hidden()
    ping_row.get_by_text("characters").click()
    expect(ping_row.locator("pre.sb-log")).to_have_text("disk full")
    # pause, then resume, with the buttons
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    heartbeat.refresh_from_db()
    assert heartbeat.status == "paused"
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    # and the page reads on a phone
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
