"""Home's unhealthy-service tiles carry their 24 h uptime and latency sparkline too."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard import sections
from dashboard.home import SERVICE_TILES
from health.tests.test_tiles import seed_day

pytestmark = pytest.mark.django_db


def home_queries(user: Any) -> tuple[int, str]:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert response.status_code == 200
    return len(queries), response.content.decode()


def home_tiles(html: str) -> list[str]:
    return re.findall(r'<a id="home-tile-.*?</a>', html, re.S)


def test_home_tiles_show_the_day_in_the_same_queries_for_10_and_1000_services(
    world: Any, fleet: Any
) -> None:
    # given 10 services, one down, each with a day of probes
    small_fleet = fleet(10)
    seed_day(small_fleet.services, world.production)
    small, _ = home_queries(world.viewer)
    # when there are a thousand more, each with its day
    large_fleet = fleet(1000)
    seed_day(large_fleet.services, world.production)
    large, html = home_queries(world.viewer)
    # then home asks the same number of questions, and each tile shows uptime and sparkline
    assert small == large
    tiles = home_tiles(html)
    assert len(tiles) == SERVICE_TILES
    for tile in tiles:
        assert "99.95 %" in tile
        assert 'class="sb-spark-latency"' in tile and "<polyline" in tile


def test_the_pushed_services_section_keeps_the_tiles_day(world: Any, fleet: Any) -> None:
    # given a down service with a day of probes
    seed_day(fleet(10).services, world.production)
    # when home's services section is rendered for a push
    with CaptureQueriesContext(connection) as queries:
        html = sections.render_home("services")
    # then its tiles carry the day, read in one query for the whole section
    (tile,) = home_tiles(html)
    assert "99.95 %" in tile and "<polyline" in tile
    assert sum("health_rollup" in q["sql"] for q in queries.captured_queries) == 1
