"""Status pages, published incidents and badges through the API: the owning team's
writers may change them, everyone else is refused, bad input is a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from controlplane.models import Event
from statuspage.choices import BadgeEvent, StatusPageEvent
from statuspage.models import Badge, PublicIncident, StatusPage
from statuspage.tests.conftest import Published

pytestmark = pytest.mark.django_db

PAGE = {
    "slug": "payments-status", "title": "Payments", "team": "payments",
    "environment": "production", "published": True,
    "services": [{"service": "checkout", "display_name": "Checkout"}],
}  # fmt: skip


def _fields(response: Any) -> dict[str, list[str]]:
    return dict(response.json()["error"]["fields"])


def test_an_owner_creates_a_page_that_goes_public(world: Any, api_as: Any) -> None:
    response = api_as("owner").post("/api/v1/status/pages", PAGE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["services"] == [{"service": "checkout", "display_name": "Checkout", "group": ""}]
    assert body["public_url"] == "http://testserver/status/payments-status/"
    assert Event.objects.filter(action=StatusPageEvent.CREATED).count() == 1
    assert Client().get("/status/payments-status/").status_code == 200


@pytest.mark.parametrize("persona", ["viewer", "deployer", "outsider"])
def test_others_may_not_create_or_change_a_page(
    world: Any, api_as: Any, published: Published, persona: str
) -> None:
    client = api_as(persona)
    assert client.post("/api/v1/status/pages", PAGE, format="json").status_code == 403
    change = client.patch("/api/v1/status/pages/shop", {"title": "x"}, format="json")
    assert change.status_code == 403
    assert client.get("/api/v1/status/pages/shop").status_code == 200


def test_anonymous_callers_get_401(world: Any, api_as: Any) -> None:
    assert api_as("anonymous").get("/api/v1/status/pages").status_code == 401


def test_a_token_of_another_team_is_refused(world: Any, token_client: Any) -> None:
    client, _ = token_client(world.other_team, ["read", "write"])
    assert client.post("/api/v1/status/pages", PAGE, format="json").status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"environment": "nowhere"}, "environment"),
        ({"services": [{"service": "indexer"}]}, "services"),
        ({"services": [{"service": "checkout"}, {"service": "checkout"}]}, "services"),
        ({"services": [{"service": "checkout", "colour": "red"}]}, "services.0.colour"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"shown": True}, "shown"),
    ],
)
def test_bad_input_names_the_field(world: Any, api_as: Any, change: Any, field: str) -> None:
    response = api_as("owner").post("/api/v1/status/pages", {**PAGE, **change}, format="json")
    assert response.status_code == 400
    assert field in _fields(response), response.json()


def test_another_teams_service_needs_an_admin(world: Any, api_as: Any) -> None:
    mixed = {**PAGE, "services": [{"service": "checkout"}, {"service": "indexer"}]}
    refused = api_as("owner").post("/api/v1/status/pages", mixed, format="json")
    assert "belongs to team 'search'" in _fields(refused)["services"][0]
    assert api_as("admin").post("/api/v1/status/pages", mixed, format="json").status_code == 201


def test_services_are_replaced_in_order(published: Published, api_as: Any) -> None:
    from catalog.models import Service

    Service.objects.create(slug="cart", name="Cart", team=published.world.team)
    services = [{"service": "cart", "display_name": "Basket"},
                {"service": "checkout", "display_name": "Card API", "group": "Pay"}]  # fmt: skip
    response = api_as("owner").patch(
        "/api/v1/status/pages/shop", {"services": services}, format="json"
    )
    assert response.status_code == 200, response.content
    assert [e.display_name for e in published.page.entries.all()] == ["Basket", "Card API"]
    assert published.page.entries.get(display_name="Card API").pk == published.entry.pk


def test_an_owner_publishes_an_incident_naming_services_on_the_page(
    published: Published, api_as: Any
) -> None:
    body = {"page": "shop", "title": "Card payments slow", "services": ["checkout"],
            "impact": "major"}  # fmt: skip
    response = api_as("owner").post("/api/v1/status/incidents", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["services"] == ["checkout"]
    wrong = api_as("owner").post(
        "/api/v1/status/incidents", {**body, "services": ["indexer"]}, format="json"
    )
    assert wrong.status_code == 400 and "services" in _fields(wrong)
    assert api_as("viewer").post("/api/v1/status/incidents", body, format="json").status_code == 403
    resolved = api_as("owner").patch(
        f"/api/v1/status/incidents/{response.json()['id']}", {"status": "resolved"}, format="json"
    )
    assert resolved.json()["resolved_at"] is not None
    assert PublicIncident.objects.get().resolved_at is not None


def test_the_badge_url_is_shown_to_writers_only_and_rotates(
    published: Published, api_as: Any
) -> None:
    owner = api_as("owner")
    made = owner.post(
        "/api/v1/status/badges",
        {"service": "checkout", "environment": "production", "kind": "uptime_7d"},
        format="json",
    )
    assert made.status_code == 201, made.content
    url = made.json()["url"]
    badge = Badge.objects.get()
    assert url.endswith(f"/badges/{badge.token}.svg")
    # the token is in no event and not shown to a reader of another team
    assert badge.token not in str(list(Event.objects.values_list("payload", flat=True)))
    assert "url" not in api_as("outsider").get(f"/api/v1/status/badges/{badge.pk}").json()
    assert owner.get("/api/v1/status/badges").json()["results"][0]["url"] == url
    assert api_as("outsider").post(f"/api/v1/status/badges/{badge.pk}/rotate").status_code == 403
    rotated = owner.post(f"/api/v1/status/badges/{badge.pk}/rotate")
    assert rotated.status_code == 200 and rotated.json()["url"] != url
    assert Client().get(url).status_code == 404
    assert Client().get(rotated.json()["url"]).status_code == 200
    assert Event.objects.filter(action=BadgeEvent.ROTATED).count() == 1


def test_a_page_is_handed_to_another_team_only_by_a_writer_there(
    published: Published, api_as: Any
) -> None:
    response = api_as("owner").patch(
        "/api/v1/status/pages/shop", {"team": "search", "services": []}, format="json"
    )
    assert response.status_code == 403
    assert StatusPage.objects.get().team == published.world.team
