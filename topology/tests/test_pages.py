"""The map and blast-radius pages: sign-in, what they show, filters, the text alternative."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from catalog.choices import Tier
from catalog.models import ExternalDependency, Service
from circuits.models import Circuit
from health.choices import ServiceStatus
from health.models import ServiceHealth
from topology.models import NodeKind
from topology.tests.conftest import edge_minute

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(world: Any) -> None:
    """web (tier 1) -> checkout -> stripe (circuit open in production); checkout -> redis."""
    web = Service.objects.create(slug="web", name="Web", team=world.other_team, tier=Tier.CRITICAL)
    web.depends_on.add(world.service)
    stripe = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    world.service.external_dependencies.add(stripe)
    Circuit.objects.create(
        service=world.service,
        environment=world.production,
        name="stripe-api",
        protects_external=stripe,
        state="open",
    )
    edge_minute("checkout", "redis", environment=world.production, kind=NodeKind.VIRTUAL, calls=150)
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DOWN
    )


def signed_in(world: Any) -> Client:
    client = Client()
    client.force_login(world.outsider)
    return client


def test_anonymous_visitors_are_sent_to_sign_in(world: Any) -> None:
    for url in ["/topology/", "/topology/blast/service/checkout/"]:
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=/topology/")


def test_the_map_draws_every_node_coloured_with_edges_and_a_table(shop: None, world: Any) -> None:
    response = signed_in(world).get("/topology/")

    assert response.status_code == 200
    html = response.content.decode()
    # production by default: checkout is down there, its node says so and links to its page
    assert 'data-node="service:checkout"' in html
    assert 'data-health="down"' in html
    assert 'href="/catalog/services/checkout/?env=production"' in html
    # the external dependency and the traced peer link to their blast radius
    assert 'href="/topology/blast/external/stripe/?environment=production"' in html
    assert 'data-node="virtual:redis"' in html
    # edges: the open circuit, the traced calls in the tooltip, and the same in the table
    assert 'data-level="open" data-caller="service:checkout" data-callee="external:stripe"' in html
    assert "checkout → redis; 10.0 calls/min, 0.0% errors, p99 100 ms; sources: trace" in html
    assert 'id="edge-table"' in html and "declared, circuit" in html
    assert "Dependency map" in html


def test_the_map_filters_by_environment_and_team(shop: None, world: Any) -> None:
    client = signed_in(world)

    staging = client.get("/topology/", {"environment": "staging"}).content.decode()
    assert 'data-callee="virtual:redis"' not in staging
    assert (
        'data-level="quiet" data-caller="service:checkout" data-callee="external:stripe"' in staging
    )

    search = client.get("/topology/", {"environment": "", "team": "search"}).content.decode()
    assert 'data-node="service:web"' in search and 'data-node="service:indexer"' in search
    assert 'data-node="external:stripe"' not in search

    assert client.get("/topology/", {"environment": "moon"}).status_code == 404
    assert client.get("/topology/", {"team": "nobody"}).status_code == 404


def test_the_blast_radius_lists_who_is_hurt_and_highlights_them(shop: None, world: Any) -> None:
    response = signed_in(world).get("/topology/blast/external/stripe/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "If stripe is down, who is hurt" in html
    assert "<strong>2</strong> nodes depend on stripe" in html
    assert "1 of them tier 1</strong> (web)" in html
    assert "web → checkout → stripe" in html
    assert 'data-node="service:web" data-kind="service" data-health="unknown" data-hurt' in html
    assert (
        'data-node="external:stripe" data-kind="external" data-health="unknown" data-origin' in html
    )


def test_the_blast_radius_of_an_unknown_node_is_404(shop: None, world: Any) -> None:
    client = signed_in(world)
    assert client.get("/topology/blast/service/nope/").status_code == 404
    assert client.get("/topology/blast/planet/earth/").status_code == 404
    lonely = client.get("/topology/blast/service/indexer/").content.decode()
    assert "Nothing depends on indexer" in lonely
