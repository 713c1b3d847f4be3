"""The public status page in Debian's chromium, logged out, on a phone-sized screen."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from health.choices import ServiceStatus
from health.models import HourRollup, RollupWatermark, ServiceHealth
from health.models.history import HISTOGRAM_SIZE
from statuspage.choices import Indicator
from statuspage.models import PublicIncident, StatusPage, StatusPageService

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _publish(world: Any) -> StatusPage:
    page = StatusPage.objects.create(
        slug="shop", title="Acme Shop", team=world.team, environment=world.production,
        published=True,
    )  # fmt: skip
    entry = StatusPageService.objects.create(
        page=page, service=world.service, display_name="Card API"
    )
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DEGRADED
    )
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    HourRollup.objects.bulk_create(
        [HourRollup(service=world.service, environment=world.production,
                bucket=now - timedelta(days=d), count=100, failures=5 if d == 3 else 0,
                histogram=[0] * HISTOGRAM_SIZE)
         for d in range(1, 20)]
    )  # fmt: skip
    RollupWatermark.objects.update_or_create(id=1, defaults={"folded_until": now})  # folded
    incident = PublicIncident.objects.create(
        page=page, title="Some card payments fail", message="We are on it.", impact=Indicator.MINOR
    )
    incident.entries.add(entry)
    return page


def test_a_visitor_reads_the_page_on_a_phone_and_by_keyboard(world: Any, page: Page) -> None:
    # given a published page with a degraded service and a bad day three days ago
    _publish(world)
    # when a logged-out visitor opens it on a 390 px wide screen
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/status/shop/")
    # then the state, the incident and 90 bars show, without sideways scrolling
    expect(page.get_by_role("heading", name="Minor Service Outage")).to_be_visible()
    expect(page.get_by_role("heading", name="Some card payments fail")).to_be_visible()
    component = page.locator(".sp-component", has_text="Card API")
    expect(component).to_contain_text("Partial outage")
    bars = component.locator(".sp-bar")
    expect(bars).to_have_count(90)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # the bad day is red, days with data are coloured, older ones grey
    bad_day = (timezone.now() - timedelta(days=3)).date()
    label = f"{bad_day:%b} {bad_day.day}, {bad_day.year}: 95% uptime"
    bad = component.get_by_label(label)
    expect(bad).to_have_attribute("data-level", "poor")
    good = component.locator('.sp-bar[data-level="good"]').first
    none = component.locator('.sp-bar[data-level="none"]').first
    colours = [b.evaluate("e => getComputedStyle(e).backgroundColor") for b in (bad, good, none)]
    assert len(set(colours)) == 3 and "rgba(0, 0, 0, 0)" not in colours, colours
    # and a keyboard user reaches a bar with Tab and reads its figure in the tooltip
    tip = "e => { const s = getComputedStyle(e, '::after'); return [s.display, s.content]; }"
    assert bad.evaluate(tip)[0] == "none"
    bad.focus()
    assert bad.evaluate(tip) == ["block", f'"{label}"']
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the tip stays on screen
    page.keyboard.press("Tab")
    assert bad.evaluate(tip)[0] == "none"
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") != label
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page-390.png"), full_page=True)
    # nothing on it asks for a login or posts anywhere
    assert page.locator("form").count() == 0
    assert "login" not in page.url
