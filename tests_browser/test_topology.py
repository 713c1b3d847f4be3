"""The dependency map in a real browser: a 30-service catalog, nodes drawn, a click through."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from catalog.choices import Tier
from catalog.models import Environment, ExternalDependency, Service, Team
from controlplane.tests.browser import log_in
from health.choices import ServiceStatus
from health.models import ServiceHealth
from topology.models import NodeKind
from topology.tests.conftest import edge_minute

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "topology.png"


def catalog() -> Any:
    """Three teams' 30 services in four layers, two external dependencies, traced calls."""
    production = Environment.objects.create(
        slug="production", name="Production", is_production=True
    )
    teams = [Team.objects.create(slug=s, name=s.title()) for s in ("web", "orders", "platform")]
    layers: list[list[Service]] = []
    for depth, width in enumerate([4, 8, 10, 8]):
        layers.append(
            [
                Service.objects.create(
                    slug=f"l{depth}-svc-{i}",
                    name=f"Layer {depth} service {i}",
                    team=teams[(depth + i) % 3],
                    tier=Tier.CRITICAL if depth == 0 else Tier.STANDARD,
                )
                for i in range(width)
            ]
        )
    for upper, lower in itertools.pairwise(layers):
        for i, caller in enumerate(upper):
            caller.depends_on.add(lower[i % len(lower)], lower[(i + 1) % len(lower)])
    stripe = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    s3 = ExternalDependency.objects.create(slug="s3", name="S3")
    for service in layers[3]:
        service.external_dependencies.add(s3 if service.pk % 2 else stripe)
        ServiceHealth.objects.create(
            service=service, environment=production, status=ServiceStatus.HEALTHY
        )
    ServiceHealth.objects.create(
        service=layers[2][0], environment=production, status=ServiceStatus.DOWN
    )
    edge_minute(
        layers[3][0].slug,
        "postgresql",
        environment=production,
        kind=NodeKind.VIRTUAL,
        calls=600,
        failures=60,
    )
    get_user_model().objects.create_user("erin", password="pw-erin-map")
    return layers


def test_the_map_shows_the_fleet_and_a_click_opens_the_service(page: Page) -> None:
    # given a catalog of 30 services that depend on each other, one of them down
    layers = catalog()
    target = layers[1][2]
    # when erin opens the map from the navigation
    log_in(page, "erin", "pw-erin-map")
    page.get_by_role("link", name="Map", exact=True).click()
    # then every node is drawn, coloured, the traced peer among them, and the edge table
    expect(page.get_by_role("heading", name="Dependency map")).to_be_visible()
    expect(page.locator("#dependency-map a.sb-node")).to_have_count(30 + 2 + 1)
    down = page.locator('a.sb-node[data-node="service:l2-svc-0"]')
    expect(down).to_have_attribute("data-health", "down")
    expect(page.locator('.sb-edge[data-callee="virtual:postgresql"]')).to_have_attribute(
        "data-level", "failing"
    )
    expect(page.locator("#edge-table tbody tr")).to_have_count(4 * 2 + 8 * 2 + 10 * 2 + 8 + 1)
    page.locator(".sb-map-wrap").screenshot(path=str(SCREENSHOT))
    # and clicking a node opens that service's page
    page.locator(f'a.sb-node[data-node="service:{target.slug}"]').click()
    expect(page).to_have_url(re.compile(rf"/catalog/services/{target.slug}/\?env=production$"))
    expect(page.get_by_role("heading", name=target.name)).to_be_visible()


def test_an_external_dependency_opens_its_blast_radius_with_the_hurt_highlighted(
    page: Page,
) -> None:
    # given the catalog, and erin on the map
    catalog()
    log_in(page, "erin", "pw-erin-map")
    page.goto("/topology/")
    # when she clicks stripe
    page.locator('a.sb-node[data-node="external:stripe"]').click()
    # then the page says who is hurt, tier 1 among them, and the map highlights them
    expect(page.get_by_role("heading", name="If stripe is down, who is hurt")).to_be_visible()
    expect(page.locator("#blast-summary")).to_contain_text("of them tier 1")
    hurt_rows = page.locator("#hurt-table tbody tr")
    expect(hurt_rows.first).to_contain_text("l3-svc-")
    assert page.locator("#dependency-map a.sb-node[data-hurt]").count() == hurt_rows.count()
    expect(page.locator("a.sb-node[data-origin]")).to_have_attribute("data-node", "external:stripe")
