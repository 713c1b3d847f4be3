"""The incident pages in Debian's chromium: a dependent names its root with a link, and the
root lists what it takes down."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from alerts.tests.test_dependency_grouping import Chain, chain  # noqa: F401 (fixture)
from controlplane.tests.browser import ARTIFACTS, log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_held_incident_links_to_its_root_which_lists_it(chain: Chain, page: Page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    # given checkout and web held under payments
    payments = chain.down("payments")
    checkout = chain.down("checkout")
    web = chain.down("web")
    # when an admin opens checkout's incident
    log_in(page, "root", "pw-root")
    page.goto(f"/alerts/incidents/{checkout.pk}/")
    cause = page.locator("#incident-header .sb-caused-by")
    # then it says what caused it, and that the root's page speaks for it
    expect(cause).to_contain_text("checkout -> payments")
    expect(cause).to_contain_text("held: the root's notification speaks for this one")
    # when they follow the link to the root
    cause.get_by_role("link").click()
    page.wait_for_url(f"**/alerts/incidents/{payments.pk}/")
    # then the root lists both dependents, each linked
    dependents = page.locator("#incident-dependents")
    expect(dependents).to_contain_text("web -> checkout -> payments")
    expect(
        dependents.get_by_role("link", name=f"#{web.pk} web in production is down")
    ).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dependency-root.png"), full_page=True)
    # and the incident list shows "caused by" under each dependent
    page.goto("/alerts/")
    row: Any = page.locator(f"#incident-{checkout.pk}")
    expect(row).to_contain_text(f"caused by #{payments.pk} payments in production is down")
