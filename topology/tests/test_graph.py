"""The dependency map's graph: sources merged, trace stats, health and circuit colours."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.choices import Tier
from catalog.models import ExternalDependency, Service
from circuits.choices import AggregateState
from circuits.models import Circuit
from health.choices import ServiceStatus
from health.models import ServiceHealth
from topology.choices import EdgeLevel, EdgeSource
from topology.graph import build_graph, build_scoped_graph, quantile_ms
from topology.models import NodeKind
from topology.tests.conftest import buckets_at, edge_minute

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(world: Any) -> dict[str, Any]:
    """frontend -> checkout -> inventory, checkout -> stripe (external), all declared."""
    frontend = Service.objects.create(slug="frontend", name="Frontend", team=world.other_team)
    inventory = Service.objects.create(
        slug="inventory", name="Inventory", team=world.team, tier=Tier.CRITICAL
    )
    stripe = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    frontend.depends_on.add(world.service)
    world.service.depends_on.add(inventory)
    world.service.external_dependencies.add(stripe)
    return {"frontend": frontend, "checkout": world.service, "inventory": inventory}


def test_declared_dependencies_make_a_map_without_any_tracing(shop: dict[str, Any]) -> None:
    graph = build_graph()

    assert {"service:frontend", "service:checkout", "service:inventory", "external:stripe"} <= set(
        graph.nodes
    )
    assert set(graph.edges) == {
        ("service:frontend", "service:checkout"),
        ("service:checkout", "service:inventory"),
        ("service:checkout", "external:stripe"),
    }
    edge = graph.edges[("service:checkout", "service:inventory")]
    assert edge.sorted_sources == [EdgeSource.DECLARED]
    assert edge.traces is None and edge.level == EdgeLevel.QUIET
    assert graph.nodes["service:inventory"].tier == Tier.CRITICAL
    assert graph.nodes["service:checkout"].team == "payments"
    assert graph.nodes["external:stripe"].kind == NodeKind.EXTERNAL


def test_a_peer_only_traces_name_becomes_a_virtual_node_with_the_calls(world: Any) -> None:
    # given checkout called postgresql (a db.system, not in the catalog) for two minutes
    edge_minute("checkout", "postgresql", kind=NodeKind.VIRTUAL, calls=90, failures=9)
    edge_minute("checkout", "postgresql", kind=NodeKind.VIRTUAL, calls=60, minutes_ago=3)
    # when the graph is built
    graph = build_graph()
    # then postgresql is a virtual node and the edge sums both minutes
    assert graph.nodes["virtual:postgresql"].kind == NodeKind.VIRTUAL
    edge = graph.edges[("service:checkout", "virtual:postgresql")]
    assert edge.sorted_sources == [EdgeSource.TRACE]
    assert edge.traces is not None
    assert (edge.traces.calls, edge.traces.failures) == (150, 9)
    assert edge.traces.calls_per_minute == 10.0
    assert edge.traces.error_rate == pytest.approx(6.0)
    assert edge.level == EdgeLevel.FAILING
    # every call took 50-100 ms: p99 interpolated inside that bucket, as Prometheus does
    assert edge.traces.p99_ms == pytest.approx(99.5)


def test_traces_older_than_the_window_or_of_another_environment_are_left_out(
    world: Any,
) -> None:
    edge_minute("checkout", "indexer", environment=world.production, minutes_ago=20)
    edge_minute("checkout", "indexer", environment=world.staging, calls=30)

    assert ("service:checkout", "service:indexer") not in build_graph(world.production).edges
    staging = build_graph(world.staging).edges[("service:checkout", "service:indexer")]
    assert staging.traces is not None and staging.traces.calls == 30


def test_a_traced_call_between_catalog_services_merges_with_the_declared_edge(
    shop: dict[str, Any], world: Any
) -> None:
    edge_minute("checkout", "inventory", environment=world.production, calls=200, failures=4)

    graph = build_graph(world.production)

    edge = graph.edges[("service:checkout", "service:inventory")]
    assert edge.sorted_sources == [EdgeSource.DECLARED, EdgeSource.TRACE]
    assert edge.level == EdgeLevel.ERRORS  # 2% failed
    assert not [key for key in graph.nodes if key.startswith("virtual:")]


def test_a_peer_named_as_an_external_dependency_lands_on_it(shop: dict[str, Any]) -> None:
    edge_minute("checkout", "stripe", kind=NodeKind.VIRTUAL, calls=10)

    graph = build_graph()

    edge = graph.edges[("service:checkout", "external:stripe")]
    assert edge.sorted_sources == [EdgeSource.DECLARED, EdgeSource.TRACE]
    assert "virtual:stripe" not in graph.nodes


def test_an_open_circuit_marks_its_edge_open_the_worst_across_circuits(
    shop: dict[str, Any], world: Any
) -> None:
    # given two circuits on checkout -> inventory in production, one closed, one open,
    # and one on checkout -> stripe that stopped reporting
    for name, state in [("inventory-read", AggregateState.CLOSED), ("inventory-write", "open")]:
        Circuit.objects.create(
            service=world.service,
            environment=world.production,
            name=name,
            protects_service=shop["inventory"],
            state=state,
            open_instances=2 if state == "open" else 0,
            total_instances=3,
        )
    Circuit.objects.create(
        service=world.service,
        environment=world.production,
        name="stripe",
        protects_external=ExternalDependency.objects.get(slug="stripe"),
        state=AggregateState.CLOSED,
        updated_at=timezone.now() - timedelta(hours=1),
    )
    # when the production map is built
    graph = build_graph(world.production)
    # then the inventory edge is open and the stripe one stale, never shown as closed
    edge = graph.edges[("service:checkout", "service:inventory")]
    assert edge.sorted_sources == [EdgeSource.DECLARED, EdgeSource.CIRCUIT]
    assert edge.circuit_state == AggregateState.OPEN
    assert edge.level == EdgeLevel.OPEN
    assert [c.name for c in edge.circuits] == ["inventory-read", "inventory-write"]
    assert graph.edges[("service:checkout", "external:stripe")].circuit_state == "stale"
    # and staging has no circuits at all
    staging = build_graph(world.staging)
    assert staging.edges[("service:checkout", "service:inventory")].circuits == []


def test_a_circuit_towards_an_undeclared_service_adds_the_edge(world: Any) -> None:
    Circuit.objects.create(
        service=world.service,
        environment=world.staging,
        name="search",
        protects_service=world.other_service,
        state=AggregateState.HALF_OPEN,
    )

    edge = build_graph(world.staging).edges[("service:checkout", "service:indexer")]

    assert edge.sorted_sources == [EdgeSource.CIRCUIT]
    assert edge.level == EdgeLevel.HALF_OPEN


def test_nodes_take_their_health_in_the_environment_and_the_worst_across_all(
    world: Any,
) -> None:
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.HEALTHY
    )
    ServiceHealth.objects.create(
        service=world.service, environment=world.staging, status=ServiceStatus.DOWN
    )

    assert build_graph(world.production).nodes["service:checkout"].health == "healthy"
    assert build_graph(world.staging).nodes["service:checkout"].health == "down"
    assert build_graph().nodes["service:checkout"].health == "down"
    assert build_graph().nodes["service:indexer"].health == "unknown"


def test_the_graph_can_be_narrowed_to_a_team_and_its_neighbours(shop: dict[str, Any]) -> None:
    graph = build_scoped_graph(None, list(Service.objects.filter(team__slug="search")))

    assert set(graph.nodes) == {"service:frontend", "service:checkout", "service:indexer"}
    assert set(graph.edges) == {("service:frontend", "service:checkout")}


@pytest.mark.parametrize("team", ["payments", "search"])
@pytest.mark.parametrize("environment", [None, "production"])
def test_a_scope_built_in_sql_is_the_whole_graph_cut_to_the_scope(
    shop: dict[str, Any], world: Any, team: str, environment: str | None
) -> None:
    # every source: declared (the fixture), a circuit, traces to a service, an unknown peer
    # and an external, health in two environments, a staging-only trace
    Circuit.objects.create(
        service=world.service,
        environment=world.production,
        name="inventory",
        protects_service=shop["inventory"],
        state="open",
    )
    edge_minute("frontend", "checkout", environment=world.production, failures=6)
    edge_minute("checkout", "redis", environment=world.production, kind=NodeKind.VIRTUAL)
    edge_minute("indexer", "stripe", environment=world.staging, kind=NodeKind.EXTERNAL)
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DOWN
    )
    ServiceHealth.objects.create(
        service=shop["frontend"], environment=world.staging, status=ServiceStatus.DEGRADED
    )
    env = getattr(world, environment) if environment else None
    seeds = list(Service.objects.filter(team__slug=team))
    whole = build_graph(env)
    own = {f"service:{s.slug}" for s in seeds}
    edges = {pair: e for pair, e in whole.edges.items() if own & set(pair)}
    keep = own | {key for pair in edges for key in pair}

    scoped = build_scoped_graph(env, seeds)

    assert scoped.nodes == {key: node for key, node in whole.nodes.items() if key in keep}
    assert scoped.edges == edges


def test_quantiles_interpolate_inside_the_bucket_and_cap_at_the_last_bound() -> None:
    assert quantile_ms([0] * 17, 0.99) is None
    assert quantile_ms(buckets_at(2, 100), 0.5) == pytest.approx(1.0)
    overflow = [0] * 16 + [5]
    assert quantile_ms(overflow, 0.99) == 15000


def test_histograms_are_summed_bucket_by_bucket_across_minutes(world: Any) -> None:
    # given 99 fast calls one minute and one slow call the next
    edge_minute("checkout", "indexer", calls=99, bound_ms=10)
    edge_minute("checkout", "indexer", calls=1, bound_ms=5000, minutes_ago=1)

    traces = build_graph().edges[("service:checkout", "service:indexer")].traces

    assert traces is not None
    assert traces.buckets[4] == 99 and traces.buckets[13] == 1 and sum(traces.buckets) == 100
    assert traces.p99_ms == pytest.approx(10.0)
    assert quantile_ms(traces.buckets, 0.999) == pytest.approx(4700.0)  # 2000 + 3000 * 0.9


def test_an_external_node_takes_its_watched_state(shop: dict[str, Any]) -> None:
    from health.choices import ExternalState
    from health.models import VendorStatus

    stripe = ExternalDependency.objects.get(slug="stripe")
    assert build_graph().nodes["external:stripe"].health == ServiceStatus.UNKNOWN  # not watched
    VendorStatus.objects.create(dependency=stripe, state=ExternalState.MAJOR_OUTAGE)

    node = build_graph().nodes["external:stripe"]

    assert node.health == ServiceStatus.DOWN
