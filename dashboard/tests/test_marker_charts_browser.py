"""The health service page's charts and the circuit page's chart in Debian's chromium:
they fetch the dashboard's markers endpoint and mark an incident in their window, with
a legend and a title (tooltip) on the marker, and no script error."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from circuits.choices import AggregateState
from controlplane.tests.browser import ARTIFACTS, log_in
from dashboard.tests.conftest import circuit, incident, probe_history

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_health_and_circuit_charts_mark_an_incident(world: Any, page: Page) -> None:
    from playwright.sync_api import expect

    service = world.service
    probe_history(service, world.production)
    fired = incident(world, service, "checkout is down")
    guard = circuit(world, service, world.other_service, AggregateState.OPEN)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, "viewer", "pw-viewer")

    page.goto(f"/health/services/{service.slug}/?env=production")
    charts = page.locator(".sb-charts [data-chart]")
    for n in (0, 1):
        mark = charts.nth(n).locator('.sb-chart-marker[data-kind="incident"]')
        expect(mark).to_have_count(1)
        expect(mark).to_have_attribute(
            "title", re.compile(rf"^incident #{fired.pk} \(firing\) from .* UTC, not resolved$")
        )
    expect(page.locator(".sb-charts .sb-chart-legend")).to_contain_text("an incident")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".sb-charts").screenshot(path=str(ARTIFACTS / "health-service-markers.png"))

    page.goto(f"/circuits/{guard.pk}/")
    mark = page.locator('#circuit-chart .sb-chart-marker[data-kind="incident"]')
    expect(mark).to_have_count(1)
    expect(mark).to_have_attribute("title", re.compile(rf"^incident #{fired.pk} "))
    box = mark.bounding_box()
    assert box is not None and box["width"] >= 5 and box["height"] > 50
    expect(page.locator(".sb-chart-legend")).to_contain_text("an incident")
    page.locator("#circuit-chart").screenshot(path=str(ARTIFACTS / "circuit-markers.png"))
    assert errors == []
