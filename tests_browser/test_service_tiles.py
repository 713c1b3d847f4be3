"""The health overview's tiles in Debian's chromium: each shows its 24 h uptime and latency
sparkline, keeps them through a live state change, and stacks on a 390 px phone.

The day of probes is written through the rollups' real write path (as the probe batches
write it) rather than waited for from the demo fleet, so the figures are known; the state
change is published as the health engine publishes it, and pushed over the real websocket.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from controlplane.events import publish
from controlplane.tests.browser import ARTIFACTS, log_in
from health.choices import ServiceStatus
from health.models import ServiceHealth
from health.templatetags.daily_tags import EN_DASH
from health.tests.test_overview import add_services
from health.tests.test_tiles import seed_day

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# --sb-fail and --sb-info in static/css/signalbox.css, light and dark
FAIL_LIGHT, INFO_LIGHT, INFO_DARK = "rgb(179, 38, 30)", "rgb(28, 95, 168)", "rgb(138, 180, 248)"


def test_tiles_show_uptime_and_sparkline_keep_them_live_and_stack_on_a_phone(
    world: Any, page: Page
) -> None:
    # given 30 services and a healthy checkout, each with a day of probes
    seed_day(add_services(world, 30), world.production)
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.HEALTHY
    )
    seed_day([world.service], world.production)
    log_in(page, "viewer", "pw-viewer")
    page.goto("/health/?env=production")
    expect(page.locator("#live-status")).to_contain_text("Live")
    page.evaluate("window.stillTheSamePage = true")
    tile = page.locator(f"#tile-{world.service.pk}-{world.production.pk}")
    card = page.locator(".sb-tile-card").filter(has=tile)
    spark = card.get_by_role("img", name=f"latency, last 24 h: 12{EN_DASH}48 ms")
    # then checkout's tile shows its uptime and a drawn sparkline, as every tile does
    expect(card.locator(".sb-uptime")).to_have_text("99.95 % uptime, 24 h")
    expect(spark).to_be_visible()
    expect(spark.locator("polyline")).to_have_count(1)
    expect(page.locator(".sb-tile-card .sb-spark-latency polyline")).to_have_count(31)
    assert spark.evaluate("svg => getComputedStyle(svg).color") == INFO_LIGHT
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tiles-1280.png"))
    # when checkout goes down (published as the health engine does)
    with transaction.atomic():
        ServiceHealth.objects.filter(service=world.service, environment=world.production).update(
            status=ServiceStatus.DOWN
        )
        publish(
            "health.service.changed",
            subject=world.service,
            service=world.service,
            environment=world.production,
            payload={"from": "healthy", "to": "down", "reason": "", "in_maintenance": False},
        )
    # then the tile turns red without a reload, and still carries its uptime and sparkline
    expect(tile).to_contain_text("✖ down")
    expect(card).to_have_css("border-left-color", FAIL_LIGHT)
    expect(card.locator(".sb-uptime")).to_have_text("99.95 % uptime, 24 h")
    expect(spark.locator("polyline")).to_have_count(1)
    assert page.evaluate("window.stillTheSamePage") is True
    # and on a 390 px phone the tiles stack, one per row, with nothing wider than the screen
    page.set_viewport_size({"width": 390, "height": 844})
    boxes = [page.locator(".sb-tile-card").nth(i).bounding_box() for i in range(3)]
    assert all(box is not None for box in boxes)
    assert boxes[0]["x"] == boxes[1]["x"] == boxes[2]["x"]  # type: ignore[index]
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]  # type: ignore[index]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # and in the dark theme the sparkline takes the dark palette's colour
    page.emulate_media(color_scheme="dark")
    assert spark.evaluate("svg => getComputedStyle(svg).color") == INFO_DARK
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tiles-390-dark.png"), full_page=True)
