"""A change made on the team's alert settings page is the same audited event as the same
change through the API: same action, actor, subject and payload shape."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from alerts.models import Channel, Route, Rule
from alerts.tests.conftest import WEBHOOK_SECRET
from controlplane.models import Event

pytestmark = pytest.mark.django_db
PAGE = "/alerts/teams/payments/"


def owner_page(world: Any) -> Client:
    client = Client()
    client.force_login(world.owner)
    return client


def other(rule: Rule) -> str:
    return "info" if rule.severity != "info" else "ticket"


def last(action: str) -> Event:
    return Event.objects.filter(action=action).latest("id")


def same_shape(api: Event, page: Event) -> None:
    assert (api.action, api.actor_user, api.team, api.subject_type) == (
        page.action,
        page.actor_user,
        page.team,
        page.subject_type,
    )
    assert set(api.payload) == set(page.payload)
    for key in ("fields", "changes"):
        if key in api.payload:
            assert set(api.payload[key]) == set(page.payload[key])


def test_a_rule_saved_on_the_page_is_audited_like_the_api(api_as: Any, world: Any) -> None:
    # given two of the team's default rules
    first, second = Rule.objects.filter(team=world.team, default_key__gt="").exclude(
        default_key="rollback"
    )[:2]
    # when each gets another severity, one through the API and the other on the page
    api_as("owner").patch(f"/api/v1/alerts/rules/{first.pk}", {"severity": other(first)})
    api_event = last("alert_rule.updated")
    owner_page(world).post(
        PAGE, {"what": "rule", "rule": second.pk, "severity": other(second), "enabled": "on"}
    )
    page_event = last("alert_rule.updated")
    # then both wrote the same event, naming what changed
    assert page_event.pk != api_event.pk
    same_shape(api_event, page_event)
    assert page_event.payload["changes"]["severity"] == [second.severity, other(second)]
    assert page_event.subject_id == str(second.pk)


def test_a_channel_made_and_deleted_on_the_page_is_audited_like_the_api(
    api_as: Any, world: Any, receiver: Any
) -> None:
    created = api_as("owner").post(
        "/api/v1/alerts/channels",
        {
            "team": "payments",
            "name": "api-hook",
            "kind": "webhook",
            "url": receiver.url("/a"),
            "secret": WEBHOOK_SECRET,
        },
        format="json",
    )
    assert created.status_code == 201
    api_made = last("alert_channel.created")
    page = owner_page(world)
    page.post(
        PAGE,
        {
            "what": "channel",
            "channel-name": "page-hook",
            "channel-kind": "webhook",
            "channel-url": receiver.url("/b"),
            "channel-secret": WEBHOOK_SECRET,
        },
    )
    page_made = last("alert_channel.created")
    same_shape(api_made, page_made)
    assert WEBHOOK_SECRET not in str(page_made.payload)  # the secret is never in the audit log
    api_as("owner").delete(f"/api/v1/alerts/channels/{created.json()['id']}")
    api_gone = last("alert_channel.deleted")
    channel = Channel.objects.get(name="page-hook")
    page.post(PAGE, {"what": "delete-channel", "channel": channel.pk})
    page_gone = last("alert_channel.deleted")
    same_shape(api_gone, page_gone)
    assert not Channel.objects.filter(name="page-hook").exists()


def test_a_route_added_and_removed_on_the_page_is_audited_like_the_api(
    api_as: Any, world: Any, alerting: Any
) -> None:
    made = api_as("owner").post(
        "/api/v1/alerts/routes",
        {"team": "payments", "severity": "ticket", "channel": alerting.slack.pk},
        format="json",
    )
    assert made.status_code == 201, made.json()
    api_made = last("alert_route.created")
    page = owner_page(world)
    page.post(
        PAGE,
        {
            "what": "route",
            "route-severity": "info",
            "route-channel": alerting.webhook.pk,
            "route-escalation_level": 1,
            "route-group_wait_seconds": 0,
        },
    )
    page_made = last("alert_route.created")
    same_shape(api_made, page_made)
    route = Route.objects.get(channel=alerting.webhook, severity="info")
    page.post(PAGE, {"what": "delete-route", "route": route.pk})
    assert last("alert_route.deleted").subject_id == str(route.pk)
    assert not Route.objects.filter(pk=route.pk).exists()
