"""The map of a large fleet: scoped by default past FULL_MAP_SERVICES, each scope built in
SQL around it (the same queries at 20 and at 300 services), and the page says what it shows."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Service, Team
from circuits.models import Circuit
from health.choices import ServiceStatus
from health.models import ServiceHealth
from topology.models import NodeKind
from topology.scope import FULL_MAP_SERVICES, MAX_SEEDS
from topology.tests.conftest import edge_minute
from topology.views import MAX_DRAWN_NODES

pytestmark = pytest.mark.django_db


def chain(world: Any, size: int, team: Any) -> list[Service]:
    """`size` services of `team`, each calling the next (declared, a circuit, traces), with
    a health in production; svc-0003 is down."""
    services = Service.objects.bulk_create(
        Service(slug=f"svc-{i:04d}", name=f"Service {i}", team=team) for i in range(size)
    )
    through = Service.depends_on.through
    through.objects.bulk_create(
        through(from_service_id=a.pk, to_service_id=b.pk) for a, b in itertools.pairwise(services)
    )
    Circuit.objects.bulk_create(
        Circuit(service=a, environment=world.production, name=b.slug, protects_service=b)
        for a, b in itertools.pairwise(services)
    )
    for a, b in itertools.pairwise(services[:6]):
        edge_minute(a.slug, b.slug, environment=world.production)
    edge_minute(services[0].slug, "redis", environment=world.production, kind=NodeKind.VIRTUAL)
    ServiceHealth.objects.bulk_create(
        ServiceHealth(
            service=s,
            environment=world.production,
            status=ServiceStatus.DOWN if s.slug == "svc-0003" else ServiceStatus.HEALTHY,
        )
        for s in services
    )
    return services


def page(client: Client, **params: Any) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/topology/", {"environment": "production", **params})
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_scoped_map_costs_the_same_queries_at_20_and_at_300_services(world: Any) -> None:
    team = Team.objects.create(slug="fleet", name="Fleet")
    services = chain(world, 20, team)
    client = signed_in(world.viewer)
    few = {
        "team": page(client, team="fleet")[1],
        "service": page(client, service="svc-0005", depth=3)[1],
        "search": page(client, q="svc-001")[1],
    }
    # grown to 300 (past the whole-map threshold): the team's seeds are capped, so is the map
    more = Service.objects.bulk_create(
        Service(slug=f"svc-{i:04d}", name=f"Service {i}", team=team) for i in range(20, 300)
    )
    through = Service.depends_on.through
    through.objects.bulk_create(
        through(from_service_id=a.pk, to_service_id=b.pk)
        for a, b in itertools.pairwise([services[-1], *more])
    )
    html, queries = page(client, team="fleet")
    assert queries == few["team"]
    assert html.count('class="sb-node"') <= MAX_DRAWN_NODES
    assert f"(the first {MAX_SEEDS} of them by slug)" in html
    assert page(client, service="svc-0005", depth=3)[1] == few["service"]
    assert page(client, q="svc-001")[1] == few["search"]
    # the default scope past the threshold costs the same at 300 as a team scope at 20, give
    # or take the scope's own query
    assert abs(page(client)[1] - few["team"]) <= 1


def test_past_the_threshold_the_map_opens_on_the_problems_and_says_so(world: Any) -> None:
    team = Team.objects.create(slug="fleet", name="Fleet")
    chain(world, FULL_MAP_SERVICES + 40, team)
    total = FULL_MAP_SERVICES + 40 + 2  # and the world's checkout and indexer
    html, _ = page(signed_in(world.viewer))
    # svc-0003 is down: it and its callers and callees, nothing else
    nodes = {n for n in html.split('data-node="')[1:] for n in [n.split('"')[0]]}
    assert nodes == {"service:svc-0002", "service:svc-0003", "service:svc-0004"}
    assert (
        f"Showing 3 of {total} services: services down or degraded and their direct neighbours, "
        f"the default past {FULL_MAP_SERVICES} services; pick a team or a service." in html
    )
    assert 'name="service"' in html and 'name="q"' in html and 'name="depth"' in html
    # nothing down: the viewer's teams (payments: checkout)
    ServiceHealth.objects.update(status=ServiceStatus.HEALTHY)
    html, _ = page(signed_in(world.viewer))
    assert 'data-node="service:checkout"' in html and "your teams&#x27; services" in html
    # nothing down and no team of one's own: an empty map and what to do
    loner = get_user_model().objects.create_user("loner", password="pw-loner")
    html, _ = page(signed_in(loner))
    assert 'class="sb-node"' not in html
    assert f"Showing none of {total} services" in html and "pick a team or a service" in html


def test_a_team_scope_shows_its_services_and_their_direct_neighbours_only(world: Any) -> None:
    team = Team.objects.create(slug="fleet", name="Fleet")
    services = chain(world, FULL_MAP_SERVICES + 40, team)
    middle = Team.objects.create(slug="middle", name="Middle")
    Service.objects.filter(slug__in=["svc-0050", "svc-0051"]).update(team=middle)
    html, _ = page(signed_in(world.viewer), team="middle")
    nodes = {n.split('"')[0] for n in html.split('data-node="')[1:]}
    # 0049 calls 0050, 0051 calls 0052: direct neighbours; 0048 and 0053 are two hops away
    assert nodes == {f"service:svc-00{i}" for i in (49, 50, 51, 52)}
    assert "Showing 4 of" in html and "team middle and their direct neighbours" in html
    assert services[0].slug not in html


def test_a_small_fleet_shows_the_whole_map_without_scope_controls(world: Any) -> None:
    html, _ = page(signed_in(world.viewer))
    assert 'data-node="service:checkout"' in html and 'data-node="service:indexer"' in html
    assert 'id="map-scope"' not in html and 'placeholder="slug or name"' not in html


def test_bad_scope_parameters_are_refused_with_the_field(world: Any) -> None:
    client = signed_in(world.viewer)
    response = client.get("/topology/", {"service": "checkout", "depth": "9"})
    assert response.status_code == 400 and b"depth: a whole number from 1 to 3" in response.content
    response = client.get("/topology/", {"service": "nope"})
    assert response.status_code == 400 and b"service: no service 'nope'" in response.content
