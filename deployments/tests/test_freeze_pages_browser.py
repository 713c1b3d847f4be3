"""The freeze windows page in Debian's chromium: an admin freezes production, one bad value
is named by its field, and the freeze is ended early."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from controlplane.tests.browser import log_in
from deployments.freeze import freeze_of
from deployments.models import FreezeWindow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_an_admin_freezes_production_and_ends_the_freeze_early(world: Any, page: Page) -> None:
    # given a platform admin on the freeze windows page, on a phone
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "root", "pw-root")
    page.goto("/deployments/")
    page.get_by_role("link", name="Freeze windows").click()
    expect(page.locator("#frozen-production")).to_contain_text("open for rollouts")
    page.get_by_text("Freeze an environment once…").click()
    # when they forget the environment
    page.get_by_label("Reason").first.fill("year-end close")
    page.get_by_role("button", name="Create freeze window").click()
    # then the form says so under the field and nothing is frozen
    expect(page.locator("#fz-environment-error")).to_be_visible()
    assert not FreezeWindow.objects.exists()
    # when they choose production and create it
    page.locator("#fz-environment").select_option("production")
    page.get_by_role("button", name="Create freeze window").click()
    # then production is frozen, on the page and for rollouts
    expect(page.locator("#frozen-production")).to_contain_text("frozen until")
    expect(page.locator("#frozen-production")).to_contain_text("year-end close")
    assert freeze_of(world.production) is not None
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # when they end it now
    page.get_by_role("button", name="End now").click()
    # then production is open again
    expect(page.locator("#frozen-production")).to_contain_text("open for rollouts")
    assert freeze_of(world.production) is None
