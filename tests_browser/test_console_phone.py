"""Every console form page at a phone's width (390x844, an on-call engineer's first look) in
Debian's chromium: nothing scrolls sideways, and Tab reaches every form control in order.

Real parts: the uvicorn server, PostgreSQL, the browser. Closed disclosures (the pages'
"Invite someone…", "New channel…") are opened first: their controls count too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone

from alerts.choices import ChannelKind
from alerts.models import Channel
from catalog.models import ApiToken, Invitation
from controlplane.tests.browser import log_in
from health.models import Heartbeat

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE: ViewportSize = {"width": 390, "height": 844}
INVITATION_TOKEN = "phone-width-invitation-token-0123456789abcdef"

# The form controls a person can reach, in document order: one per radio group (Tab
# enters a group once; arrows move inside it).
CONTROLS_JS = """() => {
  const seen = new Set();
  const out = [];
  const all = document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, summary');
  all.forEach((el, i) => {
    if (el.disabled || el.tabIndex < 0) return;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') return;
    if (box.width === 0 && box.height === 0) return;
    const key = el.type === 'radio' && el.name ? 'radio:' + el.form?.id + ':' + el.name : 'el:' + i;
    if (seen.has(key)) return;
    seen.add(key);
    el.dataset.consoleKey = key;
    if (el.type === 'radio') {
      document.querySelectorAll(`input[type=radio][name="${el.name}"]`).forEach(
        r => { if (r.form === el.form) r.dataset.consoleKey = key; });
    }
    out.push(key);
  });
  return out;
}"""


def open_disclosures(page: Page) -> None:
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")


def tab_order(page: Page, presses: int, wanted: list[str]) -> list[str]:
    """The keys of the controls Tab lands on, from the top of the page, in order."""
    # Start from the top: focus an unreachable marker before everything (a blur alone
    # leaves chromium's starting point where the focus was, e.g. an autofocused field).
    page.evaluate(
        """() => { const top = document.createElement('span'); top.tabIndex = -1;
                   document.body.prepend(top); top.focus(); }"""
    )
    landed: list[str] = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        key = page.evaluate("() => document.activeElement?.dataset?.consoleKey || ''")
        if key and (not landed or landed[-1] != key):
            landed.append(key)
            if key == wanted[-1]:
                break  # the last control: the rest of the page has none
    return landed


def check_page(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    open_disclosures(page)
    # nothing scrolls sideways at 390 px
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{path} is {width} px wide at {PHONE['width']} px"
    # and every form control is reached by Tab, in the order they appear
    controls = page.evaluate(CONTROLS_JS)
    assert controls, f"{path} has no form controls"
    focusable = page.evaluate(
        "() => document.querySelectorAll('a[href], input, select, textarea, button, summary,"
        " [tabindex]').length"
    )
    # Chromium also stops at scrollable boxes (a wide table's scroller): room for those.
    landed = tab_order(page, 3 * focusable + 20, controls)
    missing = [key for key in controls if key not in landed]
    described = page.evaluate(
        "keys => keys.map(k => { const el = document.querySelector(`[data-console-key='${k}']`);"
        " return el ? el.outerHTML.slice(0, 120) : k; })",
        missing[:3],
    )
    assert not missing, f"{path}: Tab never reaches {described} (of {len(controls)})"
    firsts = [landed.index(key) for key in controls]
    assert firsts == sorted(firsts), f"{path}: Tab reaches the controls out of order"


def test_every_console_form_page_fits_a_phone_and_tabs_through_its_controls(
    world: Any, page: Page
) -> None:
    # given a team with a pending invitation, a token, a channel and a heartbeat
    heartbeat = Heartbeat.objects.create(
        name="nightly-backup", service=world.service, environment=world.production
    )
    Invitation.objects.create(
        team=world.team, email="someone.with.a.long.address@example.com",
        token_hash=Invitation.hash_token(INVITATION_TOKEN),
        expires_at=timezone.now() + Invitation.lifetime(),
    )  # fmt: skip
    ApiToken.issue(team=world.team, name="checkout-production-fleet", scopes=["report"])
    Channel.objects.create(
        team=world.team, name="oncall-mail", kind=ChannelKind.EMAIL,
        config={"to": ["oncall@example.com"]},
    )  # fmt: skip
    page.set_viewport_size(PHONE)
    # the invitation's own page, as the invited person opens it (signed out)
    check_page(page, f"/invitations/{INVITATION_TOKEN}/")
    # when the team's owner opens each form page on a phone
    log_in(page, "owner", "pw-owner")
    for path in [
        "/catalog/teams/payments/",  # members, invitations, tokens, channels, routes
        "/health/services/checkout/check/",  # the check spec form
        "/health/services/checkout/",  # maintenance windows
        "/catalog/services/checkout/heartbeats/",  # new heartbeat
        f"/catalog/services/checkout/heartbeats/{heartbeat.pk}/",  # the heartbeat page
        "/deployments/freezes/",  # freeze windows
    ]:
        check_page(page, path)
