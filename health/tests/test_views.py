"""Health service and instance pages, and their live fragments (the overview: test_overview.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from catalog.models import Instance
from controlplane.events import publish
from controlplane.live import Tile
from health import derive, live, services
from health.models import InstanceCheck


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
    plain = {f[0]: f[1] for f in fragments if isinstance(f, tuple) and isinstance(f[1], str)}
    assert f'id="check-{checked.instance_id}" hx-swap-oob="outerHTML"' in plain["service:checkout"]
    assert f"instance:{checked.instance_id}" in plain
    tiles = [f for f in fragments if isinstance(f, Tile)]
    assert {t.topic for t in tiles} == {"health:overview.production", "service:checkout"}
    overview_tile = next(t for t in tiles if t.topic == "health:overview.production")
    html = overview_tile.render()
    assert f'id="tile-{world.service.pk}-{world.production.pk}"' in html
    assert "✖ down" in html
