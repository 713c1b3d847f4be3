"""Services: the owner team writes, everyone reads, with filters, search and pages."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.choices import Role, Tier
from catalog.models import Membership, Service
from controlplane.models import Event

pytestmark = pytest.mark.django_db


def test_an_owner_creates_a_service_with_its_dependencies(api_as: Any, world: Any) -> None:
    # when
    response = api_as("owner").post(
        "/api/v1/services",
        {
            "slug": "ledger",
            "name": "Ledger",
            "team": "payments",
            "tier": Tier.CRITICAL,
            "depends_on": ["checkout", "indexer"],
        },
    )
    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["team"] == "payments"
    assert body["depends_on"] == ["checkout", "indexer"]
    event = Event.objects.get(action="service.created")
    assert event.service == Service.objects.get(slug="ledger")
    assert event.team == world.team
    assert event.actor_user == world.owner


def test_an_owner_cannot_create_a_service_for_another_team(api_as: Any) -> None:
    response = api_as("owner").post(
        "/api/v1/services", {"slug": "x", "name": "X", "team": "search"}
    )
    assert response.status_code == 403
    assert not Service.objects.filter(slug="x").exists()


def test_creating_for_an_unknown_team_names_the_field(api_as: Any) -> None:
    response = api_as("owner").post("/api/v1/services", {"slug": "x", "name": "X", "team": "nope"})
    assert response.status_code == 400
    assert "team" in response.json()["error"]["fields"]


def test_a_service_cannot_depend_on_itself(api_as: Any) -> None:
    response = api_as("owner").patch("/api/v1/services/checkout", {"depends_on": ["checkout"]})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "depends_on": ["a service cannot depend on itself"]
    }


def test_moving_a_service_needs_ownership_of_the_new_team(api_as: Any, world: Any) -> None:
    # when the payments owner gives checkout to search
    refused = api_as("owner").patch("/api/v1/services/checkout", {"team": "search"})
    # then it is refused, until they also own search
    assert refused.status_code == 403
    assert "new team" in refused.json()["error"]["message"]
    Membership.objects.create(user=world.owner, team=world.other_team, role=Role.OWNER)
    moved = api_as("owner").patch("/api/v1/services/checkout", {"team": "search"})
    assert moved.status_code == 200
    assert Service.objects.get(slug="checkout").team == world.other_team


def test_deleting_a_service_is_recorded(api_as: Any, world: Any) -> None:
    response = api_as("owner").delete("/api/v1/services/checkout")
    assert response.status_code == 204
    event = Event.objects.get(action="service.deleted")
    assert event.subject_label == "checkout"
    assert event.team == world.team


def test_services_filter_by_team_tier_and_dependency(api_as: Any, world: Any) -> None:
    # given web depends on checkout and is tier 1
    web = Service.objects.create(slug="web", name="Web", team=world.team, tier=Tier.CRITICAL)
    web.depends_on.add(world.service)
    client = api_as("viewer")

    def slugs(query: str) -> list[str]:
        response = client.get(f"/api/v1/services?{query}")
        assert response.status_code == 200, response.json()
        return [s["slug"] for s in response.json()["results"]]

    # then
    assert slugs("team=payments") == ["checkout", "web"]
    assert slugs("tier=1") == ["web"]
    assert slugs("tier=1&tier=3") == ["checkout", "indexer", "web"]
    assert slugs("depends_on=checkout") == ["web"]
    assert slugs("dependency_of=web") == ["checkout"]
    assert slugs("search=index") == ["indexer"]
    assert slugs("ordering=-slug") == ["web", "indexer", "checkout"]


def test_lists_are_paginated(api_as: Any, world: Any) -> None:
    # given
    Service.objects.bulk_create(
        Service(slug=f"svc-{n:02}", name=f"Service {n}", team=world.team) for n in range(12)
    )
    # when
    first = api_as("viewer").get("/api/v1/services?page_size=5").json()
    last = api_as("viewer").get("/api/v1/services?page_size=5&page=3").json()
    # then
    assert first["count"] == 14
    assert len(first["results"]) == 5
    assert first["next"].endswith("page=2&page_size=5")
    assert len(last["results"]) == 4
    assert last["next"] is None


def test_log_and_trace_link_templates_are_filled_and_quoted(api_as: Any) -> None:
    from datetime import UTC, datetime

    # given
    response = api_as("owner").patch(
        "/api/v1/services/checkout",
        {
            "log_link_template": "https://logs.example.com/?q=service:{service}%20host:{instance}"
            "&from={start}&to={end}&ms={start_ms}",
            "trace_link_template": "https://jaeger.example.com/trace/{trace_id}",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    service = Service.objects.get(slug="checkout")
    # when
    link = service.log_link(
        instance="checkout-1 a",
        start=datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
        end=datetime(2026, 12, 3, 10, 15, tzinfo=UTC),
    )
    # then
    assert link == (
        "https://logs.example.com/?q=service:checkout%20host:checkout-1%20a"
        "&from=2026-12-03T10%3A00%3A00Z&to=2026-12-03T10%3A15%3A00Z&ms=1796292000000"
    )
    assert service.trace_link("4bf92f3577b34da6") == (
        "https://jaeger.example.com/trace/4bf92f3577b34da6"
    )


def test_a_link_template_with_an_unknown_placeholder_names_it(api_as: Any) -> None:
    response = api_as("owner").patch(
        "/api/v1/services/checkout",
        {"trace_link_template": "https://jaeger.example.com/trace/{traceid}"},
        format="json",
    )
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["trace_link_template"]
    assert "{traceid}" in message and "{trace_id}" in message
    assert Service.objects.get(slug="checkout").trace_link_template == ""
