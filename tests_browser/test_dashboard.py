"""The dashboard in a real browser against the whole system: the demo fleet, probes, rollouts
through HAProxy, alerting and circuit scraping in a Celery worker, pushes over websockets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from catalog.models import Environment, Instance, Service
from controlplane.tests.browser import log_in
from tests_browser.conftest import CHECK_PERIOD_SECONDS, DEMO_PASSWORD, DemoFleet, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"
# What "within one check period plus 2 s" allows, in Playwright's milliseconds.
ONE_PERIOD_AND_2_S = (CHECK_PERIOD_SECONDS + 2) * 1000


def catalog_instance(spec: dict[str, Any]) -> Instance:
    return Instance.objects.get(host=spec["host"], port=spec["port"])


def checks_pass(service: str) -> bool:
    from health.choices import CheckStatus
    from health.models import InstanceCheck

    statuses = set(
        InstanceCheck.objects.filter(
            instance__service__slug=service, instance__environment__slug="production"
        ).values_list("status", flat=True)
    )
    return statuses == {CheckStatus.PASS}


def test_logging_in_lands_on_what_needs_attention(demo: DemoFleet, page: Page) -> None:
    log_in(page, "carol", DEMO_PASSWORD)
    expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
    expect(page.locator("#live-status")).to_contain_text("Live")
    expect(page).to_have_title(re.compile(r"Home · Signalbox$"))


def test_a_broken_instance_turns_red_without_a_reload_within_one_check_period(
    demo: DemoFleet, workers: None, page: Page
) -> None:
    # given auth's instances pass their checks, and carol watches auth's page
    wait_until(lambda: checks_pass("auth"), what="auth's first probes")
    victim = demo.instances("auth")[0]
    row = page.locator(f"#check-{catalog_instance(victim).pk}")
    log_in(page, "carol", DEMO_PASSWORD)
    page.goto("/catalog/services/auth/")
    expect(page.locator("#live-status")).to_contain_text("Live")
    expect(row).to_contain_text("pass")
    page.evaluate("window.stillTheSamePage = true")
    # when the instance goes down (the fleet stops listening on its port)
    demo.fault(victim["id"], down=True)
    # then its row turns red, with the word, within one check period plus 2 s, no reload
    expect(row.locator(".sb-status-fail")).to_contain_text("fail", timeout=ONE_PERIOD_AND_2_S)
    assert page.evaluate("window.stillTheSamePage") is True


def test_a_service_going_down_shows_on_home_and_in_the_tab_title(
    demo: DemoFleet, workers: None, page: Page
) -> None:
    # given every service passes, and carol has home open
    wait_until(lambda: checks_pass("recommendations"), what="the first probes")
    service = Service.objects.get(slug="recommendations")
    production = Environment.objects.get(slug="production")
    log_in(page, "carol", DEMO_PASSWORD)
    expect(page.locator("#live-status")).to_contain_text("Live")
    page.evaluate("window.stillTheSamePage = true")
    # when every instance of recommendations in production goes down
    for spec in demo.instances("recommendations"):
        demo.fault(spec["id"], down=True)
    # then its tile appears, red and saying "down", and the title counts the problem
    tile = page.locator(f"#home-tile-{service.pk}-{production.pk}")
    expect(tile).to_contain_text("down", timeout=ONE_PERIOD_AND_2_S)
    expect(tile).to_have_class(re.compile("sb-tile-down"))
    expect(page).to_have_title(re.compile(r"^\(\d+\) Home · Signalbox$"))
    assert page.evaluate("window.stillTheSamePage") is True
    # and (the README's screenshot) with a degraded service beside it
    demo.fault(demo.instances("search")[0]["id"], health="fail")
    search = Service.objects.get(slug="search")
    expect(page.locator(f"#home-tile-{search.pk}-{production.pk}")).to_contain_text(
        "degraded", timeout=ONE_PERIOD_AND_2_S
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    page.screenshot(path=str(SCREENSHOT))


def test_an_incident_is_acknowledged_from_home(demo: DemoFleet, workers: None, page: Page) -> None:
    from alerts.models import Incident, Rule

    # given commerce pages as soon as a service is down, and erin (a deployer) watches home
    Rule.objects.filter(team__slug="commerce", default_key="service-down").update(
        params={"states": ["down"], "for_seconds": 0}
    )
    wait_until(lambda: checks_pass("payments"), what="payments' first probes")
    log_in(page, "erin", DEMO_PASSWORD)
    expect(page.locator("#live-status")).to_contain_text("Live")
    # when payments goes down in production
    for spec in demo.instances("payments"):
        demo.fault(spec["id"], down=True)
    # then the incident shows up firing, without a reload
    incident = wait_until(
        lambda: Incident.objects.visible().filter(service__slug="payments").first(),
        what="the incident to fire",
    )
    row = page.locator(f"#incident-{incident.pk}")
    expect(row).to_contain_text("Firing", timeout=10_000)
    # when erin acknowledges it
    row.get_by_role("button", name="Acknowledge").click()
    # then it says so, with her name recorded, and no longer counts as firing (the long
    # timeouts are for a loaded CI machine: the answer replaces the row, nothing waits)
    expect(row).to_contain_text("Acknowledged", timeout=15_000)
    expect(page.locator("#home-summary")).to_contain_text("0 firing incidents", timeout=15_000)
    incident.refresh_from_db()
    assert incident.acknowledged_by == "erin"


def test_a_rollout_started_from_the_ui_advances_through_its_steps(
    demo: DemoFleet, workers: None, haproxy: Any, page: Page
) -> None:
    from deployments.choices import RolloutState, RouterKind
    from deployments.models import DeploySettings, Rollout, TrafficRoute, TrafficRouter

    # given checkout's production instances behind HAProxy, a canary of 1.5.0 started and
    # registered, and checkout's rollouts set to three short steps
    stable = [f"127.0.0.1:{i['port']}" for i in demo.instances("checkout")]
    canary = demo.call(
        "POST",
        "/fleet/instances",
        {"service": "checkout", "environment": "production", "version": "1.5.0"},
    )
    checkout = Service.objects.get(slug="checkout")
    production = Environment.objects.get(slug="production")
    Instance.objects.create(
        service=checkout, environment=production, host="127.0.0.1", port=canary["port"],
        version="1.5.0",
    )  # fmt: skip
    proxy = haproxy("be_checkout", [*stable, f"127.0.0.1:{canary['port']}"])
    router = TrafficRouter.objects.create(
        name="haproxy", kind=RouterKind.HAPROXY, connection={"socket": proxy.socket}
    )
    TrafficRoute.objects.create(
        router=router, service=checkout, environment=production, backend="be_checkout"
    )
    DeploySettings.objects.update_or_create(
        service=checkout,
        defaults={
            "steps": [{"set_weight": 25}, {"pause": {"seconds": 2}}, {"set_weight": 100}],
            "analysis": [],
        },
    )
    try:
        # when erin (a deployer of commerce) deploys 1.5.0 from checkout's page
        log_in(page, "erin", DEMO_PASSWORD)
        page.goto("/catalog/services/checkout/")
        form = page.locator("#deploy form")
        form.get_by_label("Environment").select_option("production")
        form.get_by_label("Version").fill("1.5.0")
        form.get_by_label("Reason").fill("the new cart")
        form.get_by_role("button", name="Start rollout").click()
        # then she is on the rollout's page, which shows each step as it runs
        page.wait_for_url(re.compile(r"/deployments/rollouts/\d+/$"))
        expect(page.locator("#live-status")).to_contain_text("Live")
        steps = page.locator(".sb-timeline tbody tr[data-kind]")
        expect(steps.first).to_contain_text("Set weight", timeout=10_000)
        expect(page.locator(".sb-rollout-status")).to_contain_text("Succeeded", timeout=20_000)
        expect(steps.nth(0)).to_contain_text("25%")
        expect(steps.nth(1)).to_contain_text("Pause")
        expect(steps.nth(2)).to_contain_text("100%")
        rollout = Rollout.objects.get(to_version="1.5.0")
        assert rollout.state == RolloutState.SUCCEEDED and rollout.applied_weight == 100
    finally:
        demo.call("DELETE", f"/fleet/instances/{canary['id']}")


def test_forcing_a_circuit_open_shows_on_the_services_page(
    demo: DemoFleet, workers: None, page: Page, other_tab: Page
) -> None:
    from circuits.models import Circuit

    # given web's circuits are scraped from its instances' /metrics (the demo labels them)
    circuit = wait_until(
        lambda: Circuit.objects.filter(service__slug="web", name="checkout").first(),
        what="web's checkout circuit to be scraped",
    )
    # and bob (a deployer of storefront) has web's page open in one tab
    log_in(page, "bob", DEMO_PASSWORD)
    page.goto("/catalog/services/web/")
    expect(page.locator("#live-status")).to_contain_text("Live")
    row = page.locator(f"#service-circuit-{circuit.pk}")
    expect(row).to_contain_text("checkout")
    # when, in another tab, he forces that circuit open for a migration
    other = other_tab
    other.goto(f"/circuits/{circuit.pk}/")
    form = other.get_by_role("form", name="Force this circuit")
    form.get_by_label("Force").select_option("forced_open")
    form.get_by_label("Reason").fill("checkout database migration")
    form.get_by_role("button", name="Set override").click()
    # then the first tab shows it forced open, without a reload
    expect(row).to_contain_text("forced open", timeout=5_000)


def test_slash_searches_and_enter_jumps_to_the_one_match(demo: DemoFleet, page: Page) -> None:
    log_in(page, "carol", DEMO_PASSWORD)
    page.keyboard.press("/")
    expect(page.locator("#site-search")).to_be_focused()
    page.keyboard.type("checko")
    expect(page.locator("#search-results a.sb-search-hit").first).to_contain_text("checkout")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#search-results a.sb-search-hit").first).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/catalog/services/checkout/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Checkout")
