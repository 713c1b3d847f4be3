"""Paths under /api/ that name no endpoint answer 404 in the one error shape, never HTML."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def not_found(response: Any) -> str:
    """The message of a 404 in the one error shape (and nothing else in the body)."""
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (error["status"], error["code"], error["fields"]) == (404, "not_found", {})
    return str(error["message"])


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def browser(request: pytest.FixtureRequest, settings: Any, world: Any) -> Client:
    """A signed-in person's browser (it asks for HTML first), with DEBUG on or off."""
    settings.DEBUG = request.param
    client = Client(HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    client.force_login(world.owner)
    return client


def test_a_trailing_slash_answers_404_naming_the_path_without_it(browser: Client) -> None:
    # when an endpoint is asked for with a trailing slash
    message = not_found(browser.get("/api/v1/services/"))
    # then the answer says the API's paths have none, and which path to use
    assert message == (
        "no endpoint at /api/v1/services/: the API's paths have no trailing slash; "
        "use /api/v1/services"
    )


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
def test_a_trailing_slash_answers_404_whatever_the_method(browser: Client, method: str) -> None:
    # when a write goes to an endpoint with a trailing slash
    send = getattr(browser, method)
    response = send("/api/v1/services/checkout/", content_type="application/json")
    # then it is refused as a read is: no redirect for the client to get wrong
    assert "use /api/v1/services/checkout" in not_found(response)


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-thing", "/api/v2/services", "/api/v1/rollouts/seven", "/api/", "/api"]
)
def test_an_unknown_path_answers_404_pointing_at_the_docs(browser: Client, path: str) -> None:
    # when
    message = not_found(browser.get(path))
    # then
    assert message == f"no endpoint at {path}; the endpoints are listed at /api/docs/"


def test_it_answers_404_to_anonymous_callers_too(world: Any) -> None:
    # given no credentials
    # when
    message = not_found(Client().post("/api/v1/no-such-thing"))
    # then the missing endpoint is the answer, not the missing credentials
    assert message.startswith("no endpoint at /api/v1/no-such-thing")


def test_the_documents_without_their_slash_name_the_path_with_it(browser: Client) -> None:
    # given the schema and the interactive docs, which are pages with a trailing slash
    # when they are asked for without it
    # then the answer says where they are
    assert not_found(browser.get("/api/docs")) == "no endpoint at /api/docs; use /api/docs/"
    assert not_found(browser.get("/api/schema")) == "no endpoint at /api/schema; use /api/schema/"


def test_pages_outside_the_api_keep_django_s_slash_redirect(browser: Client) -> None:
    # when a dashboard page is asked for without its slash
    response = browser.get("/login")
    # then Django's APPEND_SLASH still sends the browser to it
    assert response.status_code == 301
    assert response["Location"] == "/login/"
