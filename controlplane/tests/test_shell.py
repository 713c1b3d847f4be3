"""The page shell: login, navigation, logout, theme, and what every page declares."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/events/"])
def test_pages_send_an_anonymous_visitor_to_log_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_the_login_page_has_a_labelled_form_and_no_navigation(client: Client) -> None:
    page = client.get("/login/").content.decode()
    assert '<label for="id_username">Username</label>' in page
    assert '<label for="id_password">Password</label>' in page
    assert 'autocomplete="current-password"' in page
    assert 'href="/events/"' not in page  # nothing to navigate to before logging in
    assert 'name="sb-live-topics"' not in page  # and no live connection


def test_a_person_logs_in_and_lands_where_they_were_going(client: Client, world: Any) -> None:
    response = client.post(
        "/login/", {"username": "viewer", "password": "pw-viewer", "next": "/events/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/events/"


def test_a_wrong_password_is_explained_and_marked_on_the_fields(client: Client, world: Any) -> None:
    response = client.post("/login/", {"username": "viewer", "password": "nope"})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'role="alert"' in page
    assert "correct username and password" in page
    assert 'aria-invalid="true"' in page


def test_the_navigation_shows_admin_to_staff_only(client: Client, world: Any) -> None:
    client.force_login(world.viewer)
    viewer_page = client.get("/").content.decode()
    client.force_login(world.admin)
    admin_page = client.get("/").content.decode()
    for link in ['href="/"', 'href="/events/"', 'href="/api/docs/"']:
        assert link in viewer_page
    assert 'href="/admin/"' not in viewer_page
    assert 'href="/admin/"' in admin_page


def test_the_current_page_is_marked_in_the_navigation(client: Client, world: Any) -> None:
    client.force_login(world.viewer)
    page = client.get("/events/").content.decode()
    assert 'href="/events/" aria-current="page"' in page
    assert 'href="/" aria-current="page"' not in page


def test_logging_out_is_a_post_and_ends_the_session(client: Client, world: Any) -> None:
    client.force_login(world.viewer)
    page = client.get("/").content.decode()
    assert '<form method="post" action="/logout/"' in page
    assert client.get("/logout/").status_code == 405  # a link or prefetch cannot log you out
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    ("cookie", "html_tag", "button_label"),
    [
        ("dark", '<html lang="en" data-theme="dark">', "Dark"),
        ("light", '<html lang="en" data-theme="light">', "Light"),
        # No attribute: Pico then follows the system's prefers-color-scheme.
        (None, '<html lang="en">', "Auto"),
        ('"><script>', '<html lang="en">', "Auto"),
    ],
)
def test_the_theme_comes_from_the_cookie_or_the_system(
    client: Client, cookie: str | None, html_tag: str, button_label: str
) -> None:
    if cookie is not None:
        client.cookies["theme"] = cookie
    page = client.get("/login/").content.decode()
    assert html_tag in page
    assert f'<span class="sb-theme-label">{button_label}</span>' in page
    assert '<script>"' not in page


def test_the_live_indicator_says_what_it_is_in_words(client: Client, world: Any) -> None:
    client.force_login(world.viewer)
    page = client.get("/").content.decode()
    assert 'id="live-status"' in page
    assert 'role="status"' in page
    assert '<span class="sb-live-label">Not live</span>' in page  # until the socket opens
    assert '<meta name="sb-live-topics" content="dashboard:home">' in page
