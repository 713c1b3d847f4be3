"""Blast radius: who is hurt when a node is down, through every edge source, with cycles."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.choices import Tier
from catalog.models import ExternalDependency, Service
from topology.graph import blast_radius, build_graph
from topology.models import NodeKind
from topology.tests.conftest import edge_minute

pytestmark = pytest.mark.django_db


def make(world: Any, slug: str, tier: int = Tier.STANDARD) -> Service:
    return Service.objects.create(slug=slug, name=slug.title(), team=world.team, tier=tier)


def test_everyone_transitively_depending_on_inventory_is_hurt_with_path_and_hops(
    world: Any,
) -> None:
    # given web -> checkout -> inventory (declared), mobile -> checkout (traced only),
    # admin (tier 1) -> inventory, and reports that nobody calls
    web, admin, inventory = make(world, "web"), make(world, "admin", 1), make(world, "inventory")
    make(world, "mobile")
    make(world, "reports")
    web.depends_on.add(world.service)
    world.service.depends_on.add(inventory)
    admin.depends_on.add(inventory)
    edge_minute("mobile", "checkout")
    # when inventory is down
    hurt = blast_radius(build_graph(), "service:inventory")
    # then its direct callers come first (tier 1 first), then theirs, with the path
    assert [(h.node.slug, h.hops) for h in hurt] == [
        ("admin", 1),
        ("checkout", 1),
        ("mobile", 2),
        ("web", 2),
    ]
    assert hurt[0].node.is_tier_1 and not hurt[1].node.is_tier_1
    assert hurt[3].path == ["service:web", "service:checkout", "service:inventory"]
    assert hurt[3].via == "service:checkout"


def test_a_cycle_is_walked_once_and_the_origin_is_never_its_own_victim(world: Any) -> None:
    # given a -> b -> c -> a, and d -> c
    a, b, c, d = (make(world, slug) for slug in "abcd")
    a.depends_on.add(b)
    b.depends_on.add(c)
    c.depends_on.add(a)
    d.depends_on.add(c)

    hurt = blast_radius(build_graph(), "service:a")

    assert [(h.node.slug, h.hops) for h in hurt] == [("c", 1), ("b", 2), ("d", 2)]
    assert hurt[2].path == ["service:d", "service:c", "service:a"]


def test_an_external_dependency_and_a_virtual_node_have_blast_radii_too(world: Any) -> None:
    stripe = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    world.service.external_dependencies.add(stripe)
    edge_minute("indexer", "elasticsearch", kind=NodeKind.VIRTUAL)
    graph = build_graph()

    assert [h.node.slug for h in blast_radius(graph, "external:stripe")] == ["checkout"]
    assert [h.node.slug for h in blast_radius(graph, "virtual:elasticsearch")] == ["indexer"]
    assert blast_radius(graph, "service:checkout") == []
