"""In a real browser: the Events page shows a new event as it happens, without a reload."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from controlplane import live
from controlplane.events import publish
from controlplane.tests.browser import AsgiServer, log_in


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_new_event_appears_at_the_top_of_the_events_page_without_a_reload(
    world: Any, page: Page
) -> None:
    # given: the viewer has the Events page open and it says it is live
    log_in(page, "viewer", "pw-viewer")
    page.get_by_role("link", name="Events", exact=True).click()
    expect(page.locator("#live-status")).to_contain_text("Live")
    page.evaluate("window.stillTheSamePage = true")

    # when: a deployer starts a rollout somewhere else
    with transaction.atomic():
        event = publish(
            "rollout.created", actor=world.deployer, subject=world.service, message="to 1.4.2"
        )

    # then: its row is first in the timeline, and the page was not reloaded to show it
    first_row = page.locator("#live-events > tr").first
    expect(first_row).to_have_attribute("id", f"event-{event.pk}", timeout=5_000)
    expect(first_row).to_contain_text("rollout.created")
    expect(first_row).to_contain_text("checkout")
    expect(first_row).to_contain_text("deployer")
    expect(page.get_by_text("No events match.")).to_be_hidden()
    assert page.evaluate("window.stillTheSamePage") is True


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_page_that_lost_its_server_catches_up_when_it_comes_back(
    world: Any, page: Page, own_asgi_server: AsgiServer
) -> None:
    # given the Events page is live
    log_in(page, "viewer", "pw-viewer")
    page.goto("/events/")
    status = page.locator("#live-status")
    expect(status).to_contain_text("Live")
    # when the server goes away, an event happens meanwhile, and the server comes back
    own_asgi_server.stop()
    expect(status).to_contain_text("Reconnecting")
    with transaction.atomic():
        missed = publish("rollout.created", actor=world.deployer, subject=world.service)
    own_asgi_server.start()
    # then the page says it is live again and shows what it missed, without a reload
    expect(status).to_contain_text("Live", timeout=20_000)
    expect(page.locator(f"#event-{missed.pk}")).to_be_visible()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_pushed_row_wrapped_in_a_template_replaces_its_row(world: Any, page: Page) -> None:
    # given the Events page shows an event
    event = publish("rollout.created", actor=world.deployer, subject=world.service)
    log_in(page, "viewer", "pw-viewer")
    page.goto("/events/")
    expect(page.locator("#live-status")).to_contain_text("Live")
    # when an app pushes a row the way htmx's docs write table parts: inside <template>
    live.push(
        "events",
        f'<template><tr id="event-{event.pk}" hx-swap-oob="outerHTML">'
        f"<td>rewritten</td></tr></template>",
    )
    # then the row on the page is replaced, not left alone
    expect(page.locator(f"#event-{event.pk}")).to_have_text("rewritten")
