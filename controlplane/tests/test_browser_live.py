"""In a real browser: the Events page shows a new event as it happens, without a reload."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from controlplane import live
from controlplane.events import publish
from controlplane.tests.browser import AsgiServer, log_in
from health.models import ServiceHealth


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


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_events_reaches_home_row_by_row_and_home_keeps_its_ten_newest(
    world: Any, page: Page
) -> None:
    # given home is open and live
    log_in(page, "viewer", "pw-viewer")
    page.goto("/")
    expect(page.locator("#live-status")).to_contain_text("Live")
    # when fifteen events commit in a burst (the server batches them into a few messages)
    events = []
    for n in range(15):
        with transaction.atomic():
            events.append(
                publish("token.issued", actor=world.owner, subject=world.team, message=f"b{n}")
            )
    # then home's timeline shows the ten newest, newest first, none missing in between
    rows = page.locator("#home-event-rows > tr:not(.sb-empty)")
    expect(rows.first).to_have_attribute("id", f"event-{events[-1].pk}", timeout=5_000)
    expect(rows).to_have_count(10)
    shown = rows.evaluate_all("rows => rows.map(row => row.id)")
    assert shown == [f"event-{event.pk}" for event in reversed(events[-10:])]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_dependency_going_down_shows_on_its_caller_s_page_without_a_reload(
    world: Any, page: Page
) -> None:
    from health.choices import ServiceStatus
    from health.models import ServiceHealth

    # given indexer calls checkout, healthy, and the viewer has indexer's page open
    world.other_service.depends_on.add(world.service)
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.HEALTHY
    )
    log_in(page, "viewer", "pw-viewer")
    page.goto("/catalog/services/indexer/?env=production")
    expect(page.locator("#live-status")).to_contain_text("Live")
    badge = page.locator('[data-dep-health="checkout@production"]')
    expect(badge).to_contain_text("healthy")
    # when checkout goes down
    with transaction.atomic():
        ServiceHealth.objects.filter(service=world.service).update(status=ServiceStatus.DOWN)
        publish(
            "health.service.changed",
            subject=world.service,
            service=world.service,
            environment=world.production,
            message="checkout in production: healthy -> down",
            payload={"from": "healthy", "to": "down"},
        )
    # then the badge says so, in words, without a reload
    expect(badge).to_contain_text("down", timeout=5_000)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_home_shows_each_events_row_even_when_it_arrives_with_a_pushed_section(
    world: Any, page: Page
) -> None:
    # given home is open and live
    log_in(page, "viewer", "pw-viewer")
    page.goto("/")
    expect(page.locator("#live-status")).to_contain_text("Live")
    rows = page.locator("#home-event-rows > tr:not(.sb-empty)")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text))
    # when a service goes down and comes back: each change pushes home's sections (tiles,
    # summary) and the event's row, in the same websocket message
    changes = []
    for before, after in (("healthy", "down"), ("down", "healthy")):
        with transaction.atomic():
            ServiceHealth.objects.update_or_create(
                service=world.service,
                environment=world.production,
                defaults={"status": after, "failing": 2 if after == "down" else 0},
            )
            changes.append(
                publish(
                    "health.service.changed",
                    subject=world.service,
                    environment=world.production,
                    payload={"from": before, "to": after, "reason": "test"},
                )
            )
        # then the row is on top of home's recent events, the newest first
        expect(rows.first).to_have_attribute("id", f"event-{changes[-1].pk}", timeout=5_000)
    shown = rows.evaluate_all("rows => rows.slice(0, 2).map(row => row.id)")
    assert shown == [f"event-{changes[1].pk}", f"event-{changes[0].pk}"]
    assert not [e for e in errors if "oobErrorNoTarget" in e], errors
