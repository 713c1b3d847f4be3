"""The service page's charts in Debian's chromium: drawn from the rollups, with deploy,
scaling and incident markers, and no script error."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone

from controlplane.tests.browser import ARTIFACTS, log_in
from dashboard.tests.conftest import incident, probe_history, rollout

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_charts_draw_with_their_markers(world: Any, page: Page) -> None:
    from playwright.sync_api import expect

    from scaling.models import Decision, ScalingGroup

    service, env = world.service, world.production
    now = timezone.now()
    probe_history(service, env, failing_minute=30)
    rollout(world, service, to_version="1.5.0")
    group = ScalingGroup.objects.create(
        service=service, environment=env, driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"}, min_instances=1,
        max_instances=5, desired=3,
    )  # fmt: skip
    Decision.objects.create(group=group, current=2, desired=3, at=now - timedelta(minutes=40))
    incident(world, service, "checkout is down")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, "viewer", "pw-viewer")
    page.goto(f"/catalog/services/{service.slug}/?env=production")
    charts = page.locator(".sb-service-charts [data-chart]")
    expect(charts.first.locator("canvas")).to_be_visible()
    expect(charts.nth(1).locator("canvas")).to_be_visible()
    expect(page.locator(".sb-chart-legend")).to_contain_text("the instance count changed")
    # each chart marks (static/js/markers.js) the rollout, the scale-up and the incident
    for kind in ("deploy", "scale", "incident"):
        expect(charts.locator(f'.sb-chart-marker[data-kind="{kind}"]')).to_have_count(2)
    # the scaling chart (server-drawn SVG) marks the firing incident as a band up to now
    band = page.locator(".sb-scaling-chart .sb-incident-mark rect")
    expect(band).to_have_count(1)
    box = band.bounding_box()
    assert box is not None and box["width"] >= 1 and box["height"] > 50
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".sb-service-charts").screenshot(path=str(ARTIFACTS / "service-charts.png"))
