"""401, 403, 404, 409 and 400 are distinct, share one shape, and say what to do."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "fields"}
    assert body["error"]["status"] == response.status_code
    return dict(body["error"])


def test_it_answers_401_with_a_challenge_without_credentials(world: Any) -> None:
    # when
    response = APIClient().get("/api/v1/services")
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="signalbox"'
    assert error_of(response)["code"] == "not_authenticated"


def test_it_answers_401_for_a_token_it_does_not_know(world: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer sbx_000000000000_not-a-real-secret")
    response = client.get("/api/v1/services")
    assert response.status_code == 401
    assert "unknown, revoked or expired" in error_of(response)["message"]


def test_it_answers_403_saying_which_role_is_missing(api_as: Any) -> None:
    # when a viewer tries to change the team's service
    response = api_as("viewer").patch("/api/v1/services/checkout", {"description": "x"})
    # then
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert "needs the owner role" in error["message"]


def test_it_answers_403_saying_which_scope_a_token_lacks(world: Any, token_client: Any) -> None:
    client, _ = token_client(world.team, ["read"])
    response = client.patch("/api/v1/services/checkout", {"description": "x"})
    assert response.status_code == 403
    assert "lacks the 'write' scope" in error_of(response)["message"]


def test_it_answers_404_for_an_unknown_object(api_as: Any) -> None:
    response = api_as("owner").get("/api/v1/services/no-such-service")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_it_answers_409_naming_the_field_of_a_duplicate(api_as: Any) -> None:
    # when the admin creates a team whose slug is taken
    response = api_as("admin").post("/api/v1/teams", {"slug": "payments", "name": "Again"})
    # then
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert error["fields"] == {"slug": ["a team with slug 'payments' already exists"]}


def test_it_answers_409_deleting_a_team_that_still_owns_services(api_as: Any) -> None:
    response = api_as("admin").delete("/api/v1/teams/payments")
    assert response.status_code == 409
    assert "still in use by checkout" in error_of(response)["message"]


def test_it_refuses_unknown_fields_naming_them(api_as: Any) -> None:
    # when
    response = api_as("owner").patch(
        "/api/v1/services/checkout", {"description": "x", "owner_email": "a@b"}
    )
    # then
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["owner_email"]
    assert error["fields"]["owner_email"][0].startswith("unknown field")


def test_it_names_each_bad_field(api_as: Any) -> None:
    response = api_as("owner").post(
        "/api/v1/services", {"slug": "Bad Slug", "name": "", "team": "payments", "tier": 9}
    )
    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"slug", "name", "tier"}


def test_it_answers_400_for_an_unknown_filter_value(api_as: Any) -> None:
    response = api_as("viewer").get("/api/v1/instances?environment=moon")
    assert response.status_code == 400
    assert "environment" in error_of(response)["fields"]


def test_it_refuses_to_change_a_slug(api_as: Any) -> None:
    response = api_as("owner").patch("/api/v1/services/checkout", {"slug": "pay"})
    assert response.status_code == 400
    assert error_of(response)["fields"] == {
        "slug": ["cannot be changed once created; create a new one instead"]
    }


def test_it_accepts_an_unchanged_slug_sent_back(api_as: Any) -> None:
    response = api_as("owner").patch("/api/v1/services/checkout", {"slug": "checkout"})
    assert response.status_code == 200


def test_it_answers_405_for_put(api_as: Any) -> None:
    response = api_as("owner").put("/api/v1/services/checkout", {"name": "x"})
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_a_token_without_read_is_told_so(world: Any, token_client: Any) -> None:
    client, _ = token_client(world.team, ["report"])
    response = client.get("/api/v1/services")
    assert response.status_code == 403
    assert error_of(response)["message"] == "this token lacks the 'read' scope (it has: report)"
