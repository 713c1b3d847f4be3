"""The login page in the browser: password reset by email (a real SMTP server), password
validators, and lockout after repeated failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model

from alerts.tests.conftest import Mailbox
from identity.tests.conftest import open_tab, start_server, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from controlplane.tests.browser import AsgiServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def mail_server(transactional_db: None, smtp: tuple[Mailbox, int]) -> Iterator[AsgiServer]:
    """Signalbox sending its email to the test's SMTP server, locking out after 3 failures."""
    _, port = smtp
    server = start_server(
        {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(port),
            "SIGNALBOX_LOGIN_FAILURE_LIMIT": "3",
            "SIGNALBOX_LOGIN_COOLOFF_MINUTES": "10",
        }
    )
    try:
        yield server
    finally:
        server.stop()


def only_message(mailbox: Mailbox) -> Message:
    envelope = wait_for(lambda: mailbox.messages[:1], "the password reset email")[0]
    return message_from_bytes(envelope.content)


def test_a_forgotten_password_is_reset_by_email(
    chromium: Browser, mail_server: AsgiServer, smtp: tuple[Mailbox, int]
) -> None:
    # given
    mailbox, _ = smtp
    get_user_model().objects.create_user("grace", "grace@example.com", "old-pw-grace-1")
    page = open_tab(chromium, mail_server.url)
    # when she asks for a link from the login page
    page.goto("/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_role("button", name="Send the link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    # then one email to her, with a link to this Signalbox
    message = only_message(mailbox)
    assert message["To"] == "grace@example.com"
    assert message["Subject"] == "Reset your Signalbox password"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    link = re.search(r"(http://\S+/password-reset/\S+/)", body)
    assert link is not None and link.group(1).startswith(mail_server.url)
    # when she opens it and tries a common password first
    page.goto(link.group(1))
    page.get_by_label("New password", exact=True).fill("password")
    page.get_by_label("New password again").fill("password")
    page.get_by_role("button", name="Set the password").click()
    # then the validators say why, next to the field
    assert page.get_by_text("This password is too common.").is_visible()
    # when she picks a good one
    page.get_by_label("New password", exact=True).fill("a-Long-new-pw-41")
    page.get_by_label("New password again").fill("a-Long-new-pw-41")
    page.get_by_role("button", name="Set the password").click()
    page.get_by_role("heading", name="Password changed").wait_for()
    # then it logs her in, and the link no longer works
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("a-Long-new-pw-41")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(mail_server.url + "/")
    page.goto(link.group(1))
    assert page.get_by_text("This link has been used already or has expired.").is_visible()


def test_no_email_goes_to_an_unknown_address(
    chromium: Browser, mail_server: AsgiServer, smtp: tuple[Mailbox, int]
) -> None:
    # given
    mailbox, _ = smtp
    get_user_model().objects.create_user("grace", "grace@example.com", "old-pw-grace-1")
    page = open_tab(chromium, mail_server.url)
    # when
    page.goto("/password-reset/")
    page.get_by_label("Email address").fill("nobody@example.com")
    page.get_by_role("button", name="Send the link").click()
    # then the same page as for a known address (nothing to learn), and no email
    page.get_by_role("heading", name="Check your email").wait_for()
    page.goto("/password-reset/")
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_role("button", name="Send the link").click()
    message = only_message(mailbox)
    assert message["To"] == "grace@example.com"
    assert len(mailbox.messages) == 1


def test_repeated_failures_lock_the_login_form(
    chromium: Browser, mail_server: AsgiServer
) -> None:
    # given
    get_user_model().objects.create_user("grace", "grace@example.com", "right-pw-grace-1")
    page = open_tab(chromium, mail_server.url)
    # when two wrong passwords, then a third
    for _ in range(2):
        page.goto("/login/")
        page.get_by_label("Username").fill("grace")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_role("alert").is_visible()
    page.get_by_label("Password").fill("wrong-again")
    posted = lambda r: r.url.endswith("/login/") and r.request.method == "POST"  # noqa: E731
    with page.expect_response(posted) as third:
        page.get_by_role("button", name="Log in").click()
    # then the login is blocked, with the standard 429 and how long
    assert third.value.status == 429
    assert third.value.headers["retry-after"] == "600"
    blocked = "Logging in is blocked for 10 minutes after 3 failed attempts."
    assert page.get_by_text(blocked).is_visible()
    # and even the right password does not get in now
    page.goto("/login/")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("right-pw-grace-1")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_text(blocked).is_visible()
    assert "/login/" in page.url
