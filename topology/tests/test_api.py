"""GET /api/v1/topology/graph and /api/v1/topology/blast-radius: shape, filters and 400s."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.choices import Tier
from catalog.models import ExternalDependency, Service
from circuits.models import Circuit
from health.choices import ServiceStatus
from health.models import ServiceHealth
from topology.models import NodeKind
from topology.tests.conftest import edge_minute

pytestmark = pytest.mark.django_db
GRAPH = "/api/v1/topology/graph"
BLAST = "/api/v1/topology/blast-radius"


@pytest.fixture
def shop(world: Any) -> None:
    """web (tier 1, search) -> checkout -> stripe; checkout -> postgresql seen in traces."""
    web = Service.objects.create(slug="web", name="Web", team=world.other_team, tier=Tier.CRITICAL)
    web.depends_on.add(world.service)
    stripe = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    world.service.external_dependencies.add(stripe)
    Circuit.objects.create(
        service=world.service,
        environment=world.production,
        name="stripe",
        protects_external=stripe,
        state="open",
        open_instances=1,
        total_instances=2,
    )
    edge_minute(
        "checkout",
        "postgresql",
        environment=world.production,
        kind=NodeKind.VIRTUAL,
        calls=300,
        failures=3,
    )
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DEGRADED
    )


def fields(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    found: dict[str, list[str]] = response.json()["error"]["fields"]
    return found


def test_the_graph_lists_nodes_and_edges_with_sources_health_circuits_and_traces(
    shop: None, api_as: Any
) -> None:
    response = api_as("viewer").get(GRAPH, {"environment": "production"})

    assert response.status_code == 200
    body = response.json()
    assert body["environment"] == "production"
    nodes = {n["id"]: n for n in body["nodes"]}
    assert nodes["service:checkout"] == {
        "id": "service:checkout",
        "kind": "service",
        "slug": "checkout",
        "name": "Checkout",
        "team": "payments",
        "tier": Tier.STANDARD,
        "health": "degraded",
    }
    assert nodes["virtual:postgresql"]["kind"] == "virtual"
    edges = {(e["caller"], e["callee"]): e for e in body["edges"]}
    stripe = edges[("service:checkout", "external:stripe")]
    assert stripe["sources"] == ["declared", "circuit"]
    assert stripe["circuit_state"] == "open" and stripe["level"] == "open"
    assert stripe["circuits"][0]["name"] == "stripe"
    assert stripe["circuits"][0]["open_instances"] == 1
    assert stripe["traces"] is None
    db = edges[("service:checkout", "virtual:postgresql")]
    assert db["sources"] == ["trace"]
    assert db["traces"]["calls"] == 300 and db["traces"]["calls_per_minute"] == 20.0
    assert db["traces"]["error_rate"] == 1.0 and db["level"] == "errors"
    assert db["traces"]["p99_ms"] == pytest.approx(99.5)


def test_without_an_environment_the_graph_spans_all_and_a_team_narrows_it(
    shop: None, api_as: Any
) -> None:
    everything = api_as("outsider").get(GRAPH).json()
    assert everything["environment"] is None
    assert {n["id"] for n in everything["nodes"]} >= {"service:indexer", "service:web"}

    search = api_as("outsider").get(GRAPH, {"team": "search"}).json()
    assert {n["id"] for n in search["nodes"]} == {
        "service:web",
        "service:indexer",
        "service:checkout",
    }
    assert [(e["caller"], e["callee"]) for e in search["edges"]] == [
        ("service:web", "service:checkout")
    ]


def test_the_graph_of_a_service_neighbourhood_or_a_search_is_its_scope(
    shop: None, api_as: Any
) -> None:
    api = api_as("viewer")
    # checkout's neighbourhood at depth 1: who it calls (stripe, traced postgresql), who calls it
    near = api.get(GRAPH, {"environment": "production", "service": "checkout"}).json()
    assert {n["id"] for n in near["nodes"]} == {
        "service:checkout",
        "service:web",
        "external:stripe",
        "virtual:postgresql",
    }
    # web at depth 1 stops at checkout; at depth 2 it reaches what checkout calls
    assert {n["id"] for n in api.get(GRAPH, {"service": "web"}).json()["nodes"]} == {
        "service:web",
        "service:checkout",
    }
    far = api.get(GRAPH, {"service": "web", "depth": 2}).json()
    assert "external:stripe" in {n["id"] for n in far["nodes"]}
    found = api.get(GRAPH, {"q": "index"}).json()
    assert {n["id"] for n in found["nodes"]} == {"service:indexer"}
    assert fields(api.get(GRAPH, {"service": "web", "depth": 0})) == {
        "depth": ["a whole number from 1 to 3"]
    }
    assert fields(api.get(GRAPH, {"depth": 2})) == {"depth": ["give it with service"]}
    assert fields(api.get(GRAPH, {"service": "nope"})) == {"service": ["no service 'nope'"]}


def test_unknown_slugs_and_parameters_are_400s_naming_the_field(shop: None, api_as: Any) -> None:
    api = api_as("viewer")
    assert fields(api.get(GRAPH, {"environment": "moon"})) == {
        "environment": ["no environment 'moon'"]
    }
    assert fields(api.get(GRAPH, {"team": "nobody"})) == {"team": ["no team 'nobody'"]}
    assert "envirnoment" in fields(api.get(GRAPH, {"envirnoment": "production"}))
    assert fields(api.get(BLAST, {"service": "nope"})) == {"service": ["no service 'nope'"]}
    assert fields(api.get(BLAST, {"external": "nope"})) == {"external": ["no external 'nope'"]}
    assert "virtual" in fields(api.get(BLAST, {"virtual": "redis"}))
    assert "service" in fields(api.get(BLAST))
    assert "external" in fields(api.get(BLAST, {"service": "checkout", "external": "stripe"}))


def test_blast_radius_names_who_is_hurt_with_paths_and_tier_1(shop: None, api_as: Any) -> None:
    response = api_as("viewer").get(BLAST, {"external": "stripe", "environment": "production"})

    assert response.status_code == 200
    body = response.json()
    assert body["origin"]["id"] == "external:stripe"
    assert [(h["node"]["id"], h["hops"], h["tier_1"]) for h in body["hurt"]] == [
        ("service:checkout", 1, False),
        ("service:web", 2, True),
    ]
    assert body["hurt"][1]["path"] == ["service:web", "service:checkout", "external:stripe"]
    assert body["tier_1"] == ["service:web"]
    virtual = api_as("viewer").get(BLAST, {"virtual": "postgresql", "environment": "production"})
    assert [h["node"]["id"] for h in virtual.json()["hurt"]] == ["service:checkout", "service:web"]


def test_reading_needs_a_sign_in_or_a_read_token(
    shop: None, api_as: Any, token_client: Any, world: Any
) -> None:
    assert api_as("anonymous").get(GRAPH).status_code == 401
    assert api_as("anonymous").get(BLAST, {"service": "checkout"}).status_code == 401
    reader, _ = token_client(world.other_team, ["read"])
    assert reader.get(GRAPH).status_code == 200
    assert reader.get(BLAST, {"service": "checkout"}).status_code == 200


def test_the_endpoints_are_in_the_openapi_schema(api_as: Any) -> None:
    schema = api_as("viewer").get("/api/schema/", {"format": "json"})

    assert schema.status_code == 200, schema.content[:300]
    paths = schema.json()["paths"]
    assert {"/api/v1/topology/graph", "/api/v1/topology/blast-radius"} <= set(paths)
    graph_get = paths["/api/v1/topology/graph"]["get"]
    assert {p["name"] for p in graph_get["parameters"]} == {
        "environment",
        "team",
        "service",
        "depth",
        "q",
    }
