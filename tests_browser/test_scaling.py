"""A scaling group's page in a real browser: a deployer sets the count through the form and
the decision arrives over the page's websocket, without a reload."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from controlplane.tests.browser import log_in
from scaling.choices import Reason
from scaling.models import ScalingGroup, ScalingMetric

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def group(world: Any) -> ScalingGroup:
    """checkout's group in production, autoscaling at 2. No worker runs: nothing converges,
    so what the page shows is the control's own doing."""
    made = ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:9"},
        min_instances=1,
        max_instances=6,
        desired=2,
    )
    ScalingMetric.objects.create(group=made, source="cpu", target=60)
    return made


def test_setting_desired_shows_the_decision_live(group: ScalingGroup, page: Page) -> None:
    # given a deployer on the group's page, live
    log_in(page, "deployer", "pw-deployer")
    page.goto(group.get_absolute_url())
    expect(page.locator("#live-status")).to_contain_text("Live")
    expect(page.locator(f"#scaling-decisions-{group.pk}")).to_contain_text("No decision yet")
    page.evaluate("window.stillTheSamePage = true")
    # when she asks for 7 (above max 6): the refusal shows next to the field
    form = page.locator(f"#scaling-desired-{group.pk}")
    form.get_by_label("Desired instances").fill("7")
    form.get_by_label("Reason").fill("flash sale at noon")
    form.get_by_role("button", name="Set desired").click()
    expect(form.locator(".sb-field-error")).to_contain_text("outside")
    # and then sets 4
    form = page.locator(f"#scaling-desired-{group.pk}")
    form.get_by_label("Desired instances").fill("4")
    form.get_by_role("button", name="Set desired").click()
    # then the decision appears, the group shows paused at 4, and the page never reloaded
    decisions = page.locator(f"#scaling-decisions-{group.pk}")
    expect(decisions).to_contain_text("Scale up 2 → 4")
    expect(decisions).to_contain_text("flash sale at noon")
    summary = page.locator(f"#scaling-summary-{group.pk}")
    expect(summary).to_contain_text("4 desired")
    expect(summary).to_contain_text("Paused")
    # the controls were fetched again for her after the push: she can resume
    expect(summary.get_by_role("button", name="Resume autoscaling")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Desired set to 4")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True
    group.refresh_from_db()
    assert group.desired == 4 and not group.enabled
    assert group.decisions.get().reason == Reason.MANUAL
