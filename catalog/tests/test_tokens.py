"""Team API tokens: shown once, stored hashed, scoped to their team, revocable, and used."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import ApiToken
from controlplane.models import Event

pytestmark = pytest.mark.django_db


def bearer(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    return client


def issue(api_as: Any, **body: Any) -> Any:
    return api_as("owner").post(
        "/api/v1/tokens", {"team": "payments", "name": "ci", "scopes": ["read"], **body}
    )


def test_an_owner_sees_the_token_once(api_as: Any) -> None:
    # when
    created = issue(api_as, scopes=["read", "deploy"])
    # then the value is in the answer, and nowhere afterwards
    assert created.status_code == 201
    plain = created.json()["token"]
    assert plain.startswith("sbx_")
    assert created.json()["scopes"] == ["deploy", "read"]
    listed = api_as("owner").get("/api/v1/tokens").json()["results"]
    shown = api_as("owner").get(f"/api/v1/tokens/{created.json()['id']}").json()
    assert "token" not in listed[0]
    assert "token" not in shown
    assert plain not in str(listed) + str(shown)
    assert shown["hint"] == plain.split("_")[0] + "_" + plain.split("_")[1] + "_…"
    assert Event.objects.get(action="token.issued").payload == {"scopes": ["deploy", "read"]}


def test_the_database_holds_only_a_hash(api_as: Any) -> None:
    # given
    plain = issue(api_as).json()["token"]
    secret = plain.split("_", 2)[2]
    # when the whole row is read back as text
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM catalog_apitoken")
        rows = str(cursor.fetchall())
    # then neither the token nor its secret part is there
    assert plain not in rows
    assert secret not in rows
    assert ApiToken.hash_secret(plain) in rows


def test_a_token_works_and_records_its_last_use(api_as: Any) -> None:
    # given
    plain = issue(api_as).json()["token"]
    assert ApiToken.objects.get().last_used_at is None
    # when
    response = bearer(plain).get("/api/v1/services")
    # then
    assert response.status_code == 200
    assert ApiToken.objects.get().last_used_at is not None


def test_a_revoked_token_gets_401_and_its_row_stays(api_as: Any) -> None:
    # given
    created = issue(api_as).json()
    client = bearer(created["token"])
    assert client.get("/api/v1/services").status_code == 200
    # when
    revoked = api_as("owner").delete(f"/api/v1/tokens/{created['id']}")
    # then
    assert revoked.status_code == 204
    response = client.get("/api/v1/services")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "token is unknown, revoked or expired"
    token = ApiToken.objects.get()
    assert token.revoked_at is not None
    assert Event.objects.filter(action="token.revoked").count() == 1


def test_revoke_answers_the_token_and_is_idempotent(api_as: Any) -> None:
    created = issue(api_as).json()
    first = api_as("owner").post(f"/api/v1/tokens/{created['id']}/revoke")
    again = api_as("owner").post(f"/api/v1/tokens/{created['id']}/revoke")
    assert first.status_code == again.status_code == 200
    assert first.json()["active"] is False
    assert first.json()["revoked_at"] == again.json()["revoked_at"]
    assert Event.objects.filter(action="token.revoked").count() == 1
    # and a new token may take the revoked one's name
    assert issue(api_as).status_code == 201


def test_an_expired_token_gets_401(world: Any) -> None:
    _, plain = ApiToken.issue(
        team=world.team,
        name="old",
        scopes=["read"],
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert bearer(plain).get("/api/v1/services").status_code == 401


def test_an_outsiders_token_gets_403_on_another_teams_writes(world: Any) -> None:
    # given a token of the search team with every scope
    _, plain = ApiToken.issue(
        team=world.other_team, name="all", scopes=["read", "write", "deploy", "report"]
    )
    client = bearer(plain)
    # when it changes payments' things
    responses = [
        client.patch("/api/v1/services/checkout", {"description": "mine now"}),
        client.patch("/api/v1/teams/payments", {"name": "Ours"}),
        client.delete("/api/v1/services/checkout"),
        client.post("/api/v1/services", {"slug": "x", "name": "X", "team": "payments"}),
    ]
    # then every write is refused, while its own team's service is fine
    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    own = client.patch("/api/v1/services/indexer", {"description": "ours"})
    assert own.status_code == 200


def test_tokens_cannot_manage_tokens(world: Any, token_client: Any) -> None:
    client, _ = token_client(world.team, ["read", "write"])
    response = client.post(
        "/api/v1/tokens", {"team": "payments", "name": "escalate", "scopes": ["deploy"]}
    )
    assert response.status_code == 403
    assert "sign in as a person" in response.json()["error"]["message"]


def test_people_see_only_the_tokens_of_teams_they_own(api_as: Any, world: Any) -> None:
    ApiToken.issue(team=world.team, name="payments-ci", scopes=["read"])
    ApiToken.issue(team=world.other_team, name="search-ci", scopes=["read"])

    def names(persona: str) -> list[str]:
        return [t["name"] for t in api_as(persona).get("/api/v1/tokens").json()["results"]]

    assert names("owner") == ["payments-ci"]
    assert names("outsider") == ["search-ci"]
    assert names("viewer") == []
    assert names("admin") == ["payments-ci", "search-ci"]


def test_a_token_for_another_teams_service_is_refused(api_as: Any) -> None:
    response = issue(api_as, service="indexer")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "service": ["indexer belongs to team search, not payments"]
    }


def test_a_second_active_token_with_the_same_name_is_a_conflict(api_as: Any) -> None:
    issue(api_as)
    response = issue(api_as)
    assert response.status_code == 409
    assert list(response.json()["error"]["fields"]) == ["name"]


def test_a_token_needs_known_scopes(api_as: Any) -> None:
    response = issue(api_as, scopes=["read", "admin"])
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["scopes.1"]
    assert issue(api_as, scopes=[]).status_code == 400


def test_issue_token_prints_a_working_token_once(world: Any) -> None:
    # when
    out, err = StringIO(), StringIO()
    call_command(
        "issue_token",
        "--team",
        "payments",
        "--scopes",
        "read,report",
        "--name",
        "fleet",
        "--service",
        "checkout",
        stdout=out,
        stderr=err,
    )
    # then stdout is the token alone (scripts can capture it) and it works
    plain = out.getvalue().strip()
    assert plain.startswith("sbx_")
    assert "shown only now" in err.getvalue()
    token = ApiToken.objects.get(name="fleet")
    assert token.scopes == ["read", "report"]
    assert token.service == world.service
    assert bearer(plain).get("/api/v1/services").status_code == 200
    assert Event.objects.get(action="token.issued").actor_label == "manage.py issue_token"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--team", "nope", "--scopes", "read"],
            "unknown team 'nope'; known teams: payments, search",
        ),
        (["--team", "payments", "--scopes", "read,sudo"], "unknown scope 'sudo'; use a comma"),
        (["--team", "payments", "--scopes", ","], "unknown scope (none given)"),
        (
            ["--team", "payments", "--scopes", "read", "--service", "indexer"],
            "service 'indexer' belongs to team 'search', not 'payments'",
        ),
    ],
)
def test_issue_token_explains_bad_arguments(world: Any, arguments: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("issue_token", *arguments, "--name", "x", stdout=StringIO())
    assert not ApiToken.objects.exists()
