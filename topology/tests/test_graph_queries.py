"""The map costs the same few queries at 10 and at 100 services (NetBox's query baselines),
and a scoped map the same at 20 and at 300."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from catalog.models import ExternalDependency, Service
from circuits.models import Circuit
from health.choices import ServiceStatus
from health.models import ServiceHealth
from topology.graph import blast_radius, build_graph
from topology.models import NodeKind
from topology.tests.conftest import edge_minute

pytestmark = pytest.mark.django_db
GRAPH_QUERIES = 7


def fleet(world: Any, size: int) -> None:
    """`size` services in a chain, each with health, a circuit, an external and traces."""
    services = [
        Service.objects.create(slug=f"svc-{i:03d}", name=f"Service {i}", team=world.team)
        for i in range(size)
    ]
    external = ExternalDependency.objects.create(slug="s3", name="S3")
    for caller, callee in itertools.pairwise(services):
        caller.depends_on.add(callee)
        caller.external_dependencies.add(external)
        Circuit.objects.create(
            service=caller,
            environment=world.production,
            name=f"to-{callee.slug}",
            protects_service=callee,
        )
        edge_minute(caller.slug, callee.slug, environment=world.production)
        edge_minute(caller.slug, "redis", environment=world.production, kind=NodeKind.VIRTUAL)
        ServiceHealth.objects.create(
            service=caller, environment=world.production, status=ServiceStatus.HEALTHY
        )


@pytest.mark.parametrize("size", [10, 100])
def test_the_graph_and_its_blast_radius_cost_a_constant_number_of_queries(
    world: Any, size: int, django_assert_max_num_queries: Any
) -> None:
    fleet(world, size)

    with django_assert_max_num_queries(GRAPH_QUERIES):
        graph = build_graph(world.production)
        hurt = blast_radius(graph, f"service:svc-{size - 1:03d}")

    assert len(graph.edges) == 3 * (size - 1)
    assert len(hurt) == size - 1


@pytest.mark.parametrize("size", [10, 50])
def test_the_map_page_costs_a_constant_number_of_queries(
    world: Any, size: int, client: Any, django_assert_max_num_queries: Any
) -> None:
    fleet(world, size)
    client.force_login(world.viewer)

    # the graph, the services counted (whole map or scope), the environments and teams for
    # the filters, the session and its user
    with django_assert_max_num_queries(GRAPH_QUERIES + 5):
        response = client.get("/topology/", {"environment": "production"})

    assert response.status_code == 200
    # the fleet, the world's checkout and indexer, s3 and the traced redis
    assert response.content.decode().count('class="sb-node"') == size + 4
