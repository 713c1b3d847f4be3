"""Health pages: bounded queries at any fleet size; live fragments for each change."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Instance, Service, Team
from controlplane.events import publish
from controlplane.live import Tile
from health import derive, live, services
from health.choices import ServiceStatus
from health.models import InstanceCheck, ServiceHealth


def add_services(world: Any, count: int, start: int = 0) -> None:
    """`count` services across 5 teams, each with a health row in production."""
    teams = [Team.objects.get_or_create(slug=f"team-{i}", name=f"Team {i}")[0] for i in range(5)]
    made = Service.objects.bulk_create(
        [
            Service(slug=f"svc-{start + i}", name=f"Service {i}", team=teams[i % 5])
            for i in range(count)
        ]
    )
    statuses = list(ServiceStatus.values)
    ServiceHealth.objects.bulk_create(
        [
            ServiceHealth(
                service=s, environment=world.production, status=statuses[i % 4], passing=i % 7
            )
            for i, s in enumerate(made)
        ]
    )


def overview_queries(client: Client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/health/?env=production")
    assert response.status_code == 200
    return len(queries.captured_queries), response.content.decode()


@pytest.mark.django_db
def test_the_overview_runs_the_same_queries_for_10_and_1000_services(world: Any) -> None:
    client = Client()
    client.force_login(world.viewer)
    # given 10 services
    add_services(world, 10)
    small, _ = overview_queries(client)
    # when there are 1,000
    add_services(world, 990, start=10)
    large, html = overview_queries(client)
    # then the page costs the same number of queries and shows them all
    assert small == large
    assert html.count('class="sb-tile ') == 1000 + 2  # plus checkout and indexer


@pytest.mark.django_db
def test_the_overview_filters_by_team_and_state(world: Any) -> None:
    add_services(world, 20)
    client = Client()
    client.force_login(world.viewer)
    html = client.get("/health/?env=production&team=team-1&state=down").content.decode()
    # svc-1, svc-6, svc-11, svc-16 are team-1; of those, index % 4 == 2 is down: svc-6
    assert ">svc-6<" in html
    assert ">svc-1<" not in html
    assert "✖ down" in html  # status reads as icon + word
    assert "health:overview.production" in html  # the page listens for live tiles


@pytest.fixture
def checked(world: Any) -> InstanceCheck:
    instance = Instance.objects.create(
        service=world.service, environment=world.production, host="10.0.0.3", port=8080
    )
    services.ensure_checks(instance)
    InstanceCheck.objects.filter(instance=instance).update(
        status="fail",
        last_reason="HTTP 503; component db fail: down",
        last_output={
            "http_status": 503,
            "components": [
                {
                    "name": "db",
                    "status": "fail",
                    "output": "down",
                    "component_id": "",
                    "observed": None,
                    "unit": "",
                }
            ],
        },
    )
    derive.refresh([(world.service.pk, world.production.pk)])
    return InstanceCheck.objects.select_related("instance").get(instance=instance)


@pytest.mark.django_db
def test_the_service_page_shows_instances_components_and_charts(
    world: Any, checked: InstanceCheck
) -> None:
    client = Client()
    client.force_login(world.viewer)
    html = client.get("/health/services/checkout/?env=production").content.decode()
    assert "10.0.0.3:8080" in html
    assert "HTTP 503; component db fail: down" in html
    assert "db: fail" in html
    assert "✖ down" in html
    assert "vendor/uplot/uPlot.iife.min.js" in html
    assert "/api/v1/health/history?service=checkout&environment=production" in html
    assert "service:checkout" in html


@pytest.mark.django_db
def test_the_instance_page_shows_the_check(world: Any, checked: InstanceCheck) -> None:
    client = Client()
    client.force_login(world.viewer)
    html = client.get(f"/health/instances/{checked.instance_id}/").content.decode()
    assert "component" in html.lower() and "db" in html
    assert f"instance:{checked.instance_id}" in html
    assert client.get("/health/instances/999999/").status_code == 404


@pytest.mark.django_db
def test_pages_need_a_login(world: Any) -> None:
    assert Client().get("/health/").status_code == 302


@pytest.mark.django_db
def test_an_instance_change_renders_its_row_and_coalesced_tiles(
    world: Any, checked: InstanceCheck
) -> None:
    # given an instance transition event
    event = publish(
        "health.instance.changed",
        subject=checked.instance,
        payload={"from": "pass", "to": "fail", "reason": "HTTP 503", "in_maintenance": False},
    )
    # when its fragments are rendered
    fragments = list(live.health_fragments(event))
    # then the row goes to the service page, the detail to the instance page, and the
    # tiles (coalesced per window) to the overview and the service banner
    plain = {topic: html for topic, html in (f for f in fragments if isinstance(f, tuple))}
    assert f'id="check-{checked.instance_id}" hx-swap-oob="outerHTML"' in plain["service:checkout"]
    assert f"instance:{checked.instance_id}" in plain
    tiles = [f for f in fragments if isinstance(f, Tile)]
    assert {t.topic for t in tiles} == {"health:overview.production", "service:checkout"}
    overview_tile = next(t for t in tiles if t.topic == "health:overview.production")
    html = overview_tile.render()
    assert f'id="tile-{world.service.pk}-{world.production.pk}"' in html
    assert "✖ down" in html
