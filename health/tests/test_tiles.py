"""The overview's tiles carry their last day: uptime and a latency sparkline, one query a page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Service
from controlplane.live import Tile
from health import live, rollups
from health.rollups import Bucket
from health.templatetags.daily_tags import EN_DASH, sparkline, uptime_text
from health.tests.test_overview import add_services, checkout_went_down, get, queries_for

pytestmark = pytest.mark.django_db


def seed_day(services: list[Service], environment: Any) -> None:
    """Three hours of probes for each service, as the probe batches write them: one
    failure in 2000 (99.95 %), latency 12 ms two hours ago, 30 ms an hour ago, 48 ms now."""
    now = timezone.now()
    buckets = {}
    for service in services:
        for hours, latency in ((2, 12.0), (1, 30.0), (0, 48.0)):
            bucket = Bucket()
            for _ in range(666 if hours else 667):
                bucket.add("pass", latency)
            if hours == 0:
                bucket.add("fail", 1.0)
            buckets[
                (service.pk, environment.pk, rollups.minute_of(now - timedelta(hours=hours)))
            ] = bucket
    rollups.upsert(buckets)


def tile_days(html: str) -> dict[str, str]:
    """The day strip of each tile on the page, by service slug."""
    found = re.findall(
        r'<div class="sb-tile-card">.*?<strong>([a-z0-9-]+)</strong>.*?'
        r'(<span class="sb-tile-day".*?</svg></span>)\s*</div>',
        html,
        re.S,
    )
    return dict(found)


def test_every_tile_shows_its_uptime_and_sparkline_in_the_same_queries_for_10_and_300(
    world: Any,
) -> None:
    viewer = Client()
    viewer.force_login(world.viewer)
    # given 10 services with a day of probes
    seed_day(add_services(world, 10), world.production)
    small = queries_for(viewer, "env=production")
    # when there are 300, each with its day of probes
    seed_day(add_services(world, 290, start=10), world.production)
    large = queries_for(viewer, "env=production")
    # then the page asks the same number of questions: one for every tile's day
    assert small == large
    with CaptureQueriesContext(connection) as queries:
        html = get(viewer, "env=production")
    assert sum("health_rollup" in q["sql"] for q in queries.captured_queries) == 1
    # and each of its 100 tiles shows "99.95 %" and a sparkline of three hours, 12 to 48 ms
    days = tile_days(html)
    assert len(days) == 100
    for day in days.values():
        assert "99.95 %" in day
        assert f'aria-label="latency, last 24 h: 12{EN_DASH}48 ms"' in day
        assert f"<title>latency, last 24 h: 12{EN_DASH}48 ms</title>" in day
        assert day.count("<polyline") == 1


def test_a_service_without_probes_says_so_instead_of_a_figure(world: Any) -> None:
    viewer = Client()
    viewer.force_login(world.viewer)
    # given checkout has probes and indexer (no verdict yet) none
    seed_day([world.service], world.production)
    days = tile_days(get(viewer, "env=production"))
    # then indexer's tile shows a dash whose tooltip says why, and an empty sparkline
    assert 'title="No probes in the last 24 h yet">—' in days["indexer"]
    assert "latency, last 24 h: no probes" in days["indexer"]
    assert "<polyline" not in days["indexer"]
    assert "99.95 %" in days["checkout"]


def test_a_live_tile_push_leaves_the_day_strip_and_reads_no_rollups(world: Any) -> None:
    # given checkout with a day of probes has gone down
    seed_day([world.service], world.production)
    event = checkout_went_down(world)
    # when its overview tile is rendered for the push
    key = f"health-{world.service.pk}-{world.production.pk}"
    (tile,) = [
        t for t in live.health_fragments(event)
        if isinstance(t, Tile) and t.key == key and t.topic.startswith("health:overview.")
    ]  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        html = tile.render()
    # then it replaces only the tile's link, inside the card the day strip shares, and the
    # render reads no rollups (a burst of changes costs no day summaries)
    assert html.startswith(f'<a id="tile-{world.service.pk}-{world.production.pk}"')
    assert 'hx-swap-oob="outerHTML"' in html and "sb-tile-down" in html
    assert "sb-tile-day" not in html
    assert not [q for q in queries.captured_queries if "health_rollup" in q["sql"]]


def test_the_sparkline_draws_a_gap_for_an_hour_without_latency_and_a_dot_for_a_lone_hour() -> None:
    points = [None] * 20 + [10.0, 20.0, None, 40.0]
    svg = str(sparkline(points))
    # two runs: hours 20-21 as a line, hour 23 as a dot; scaled to the highest point (40)
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1
    line = re.search(r'<polyline points="([^"]+)"', svg)
    assert line is not None
    (x1, y1), (x2, y2) = (map(float, p.split(",")) for p in line.group(1).split())
    assert x1 < x2 and y2 < y1  # 20 ms is higher up than 10 ms
    dot = re.search(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)
    assert dot is not None and float(dot.group(1)) == 94.5 and float(dot.group(2)) == 1.5
    assert f"latency, last 24 h: 10{EN_DASH}40 ms" in svg


@pytest.mark.parametrize(
    ("uptime", "text"),
    [(None, "—"), (100.0, "100 %"), (99.95, "99.95 %"), (99.999, "99.99 %"), (50.0, "50.00 %")],
)
def test_uptime_reads_rounded_down_so_almost_never_reads_as_always(
    uptime: float | None, text: str
) -> None:
    assert uptime_text(uptime) == text
