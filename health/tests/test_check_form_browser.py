"""The check spec form in Debian's chromium against the real server: "test it now" probes a
real HTTP server standing in for the instance and shows its health+json, then saving."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from catalog.models import Instance
from controlplane.models import Event
from controlplane.tests.browser import log_in
from health.choices import HealthEvent
from health.models import CheckSpec
from health.tests.conftest import Instances, health_json

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def local(world: Any, instances: Instances) -> Instance:
    """checkout's instance: the test's aiohttp server on loopback, which the server's outbound
    guard allows outside production (SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS)."""
    return Instance.objects.create(
        service=world.service, environment=world.production, host="127.0.0.1", port=instances.port
    )


def test_an_owner_tests_a_spec_sees_the_health_json_and_saves_it(
    world: Any, instances: Instances, local: Instance, page: Page
) -> None:
    # given an instance whose database component warns, and an owner on checkout's page
    instances.health = health_json("warn", db=("warn", "replica lag 4 s"), cache=("pass", "ok"))
    log_in(page, "owner", "pw-owner")
    page.goto("/health/services/checkout/?env=production")
    page.get_by_text("Change how checkout is checked").click()
    # when they set a condition and a latency bound and test it on the instance
    page.get_by_label("Interval (s)").fill("30")
    page.get_by_label("Latency bound (ms)").fill("2000")
    condition = page.get_by_role("group", name="Condition 1")
    condition.get_by_label("Path").fill("$.status")
    condition.get_by_label("Value").fill("warn")
    expect(page.get_by_label("Probe this instance once")).to_have_value(str(local.pk))
    page.get_by_role("button", name="Test it now").click()
    # then the probe's verdict and every parsed component show, and nothing is saved yet
    result = page.locator("#check-trial")
    expect(result).to_contain_text("not saved")
    expect(result.get_by_role("status")).to_contain_text("warn")
    expect(result).to_contain_text("health: warn; component db warn: replica lag 4 s")
    rows = result.locator(".sb-trial-components tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="db")).to_contain_text("replica lag 4 s")
    expect(rows.filter(has_text="cache")).to_contain_text("pass")
    assert instances.hits == 1
    assert not CheckSpec.objects.filter(service=world.service, interval_seconds=30).exists()
    # and the form kept what they typed; when they save it
    expect(page.get_by_label("Interval (s)")).to_have_value("30")
    page.get_by_role("button", name="Save check").click()
    # then they are back on the service page, told it is saved, and the spec is stored
    expect(page.get_by_role("status").filter(has_text="checkout's check saved")).to_be_visible()
    spec = CheckSpec.objects.get(service=world.service)
    assert (spec.interval_seconds, spec.max_latency_ms) == (30, 2000)
    assert spec.json_conditions == [{"path": "$.status", "op": "eq", "value": "warn"}]
    assert Event.objects.filter(action=HealthEvent.CHECK_CREATED, actor_user=world.owner).count()


def test_on_a_phone_a_bad_value_is_named_by_its_field_and_the_form_works_by_keyboard(
    world: Any, instances: Instances, local: Instance, page: Page
) -> None:
    # given an owner on a 390 px wide screen
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "owner", "pw-owner")
    page.goto(f"/health/services/{world.service.slug}/check/")
    # then the form fits the width (nothing scrolls sideways)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # when they type a timeout longer than the interval and submit with the keyboard
    page.get_by_label("Timeout (s)").fill("20")
    page.get_by_role("button", name="Save check").focus()
    page.keyboard.press("Enter")
    # then the reason shows under that field and nothing is saved
    error = page.locator("#spec-timeout_seconds-error")
    expect(error).to_have_text("must not exceed interval_seconds (probes would overlap)")
    expect(page.get_by_label("Timeout (s)")).to_have_attribute("aria-invalid", "true")
    assert not CheckSpec.objects.filter(service=world.service).exists()
    # and "test it now" is reachable by keyboard too, and its result fits the phone
    page.get_by_label("Timeout (s)").fill("1")
    page.get_by_role("button", name="Test it now").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#check-trial")).to_contain_text("pass")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_an_owner_opens_a_maintenance_window_and_ends_it_early(
    world: Any, local: Instance, page: Page
) -> None:
    from health.maintenance import in_maintenance
    from health.models import MaintenanceWindow

    # given an owner on checkout's page on a phone
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "owner", "pw-owner")
    page.goto("/health/services/checkout/?env=production")
    page.get_by_text("New maintenance window…").click()
    # when they give a bad time zone, then fix it
    page.get_by_label("Environment", exact=True).select_option("production")
    page.get_by_label("Reason").fill("database upgrade")
    page.get_by_label("Time zone", exact=True).fill("Mars/Olympus")
    page.get_by_role("button", name="Create maintenance window").click()
    expect(page.locator("#mw-timezone-error")).to_contain_text("IANA time zone name")
    assert not MaintenanceWindow.objects.exists()
    page.get_by_label("Time zone", exact=True).fill("UTC")
    page.get_by_role("button", name="Create maintenance window").click()
    # then the window is active and says what it covers
    window = page.locator(".sb-windows li").filter(has_text="database upgrade")
    expect(window).to_contain_text("active now")
    expect(window).to_contain_text("covers production (1 live instance)")
    assert in_maintenance(world.service.pk, world.production.pk)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # when they end it early
    window.get_by_role("button", name="End now").click()
    # then it has ended
    expect(page.locator(".sb-windows li").filter(has_text="database upgrade")).to_contain_text(
        "ended"
    )
    assert not in_maintenance(world.service.pk, world.production.pk)
