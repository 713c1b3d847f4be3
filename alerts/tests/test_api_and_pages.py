"""The incidents API and dashboard pages: acknowledge and resolve, silences, live rows."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from alerts.choices import IncidentState, RuleKind, Severity
from alerts.live import incident_fragments
from alerts.models import Incident, Rule, Silence
from alerts.tests.conftest import service_changed
from controlplane.models import Event


def firing(world: Any) -> Incident:
    Rule.objects.filter(team=world.team).update(enabled=False)
    Rule.objects.create(
        team=world.team,
        name="down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )
    service_changed(world, "down", reason="all instances failing")
    return Incident.objects.get()


@pytest.mark.django_db
def test_the_api_lists_and_acknowledges_and_resolves(api_as: Any, world: Any) -> None:
    incident = firing(world)
    listed = api_as("viewer").get("/api/v1/alerts/incidents?state=firing&service=checkout")
    assert [i["id"] for i in listed.json()["results"]] == [incident.pk]
    acked = api_as("deployer").post(f"/api/v1/alerts/incidents/{incident.pk}/acknowledge")
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "deployer"
    again = api_as("deployer").post(f"/api/v1/alerts/incidents/{incident.pk}/acknowledge")
    assert again.status_code == 409
    done = api_as("owner").post(f"/api/v1/alerts/incidents/{incident.pk}/resolve")
    assert done.json()["state"] == "resolved"
    assert [e["kind"] for e in done.json()["timeline"]][-2:] == ["acknowledged", "resolved"]


@pytest.mark.django_db
def test_a_silence_needs_a_comment_a_future_end_and_valid_matchers(api_as: Any, world: Any) -> None:
    answer = api_as("deployer").post(
        "/api/v1/alerts/silences",
        {
            "team": "payments",
            "comment": " ",
            "ends_at": (timezone.now() - timedelta(hours=1)).isoformat(),
            "matchers": [{"label": "colour", "op": "=", "value": "red"}],
        },
    )
    assert answer.status_code == 400
    assert set(answer.json()["error"]["fields"]) == {"comment", "matchers"}
    answer = api_as("deployer").post(
        "/api/v1/alerts/silences",
        {
            "team": "payments",
            "comment": "deploying the DB",
            "matchers": [],
            "ends_at": (timezone.now() - timedelta(hours=1)).isoformat(),
        },
    )
    assert answer.json()["error"]["fields"] == {"ends_at": ["must be in the future"]}


@pytest.mark.django_db
def test_a_silence_is_expired_not_deleted(api_as: Any, world: Any) -> None:
    created = (
        api_as("deployer")
        .post(
            "/api/v1/alerts/silences",
            {
                "team": "payments",
                "comment": "maintenance",
                "matchers": [{"label": "environment", "op": "=", "value": "staging"}],
                "ends_at": (timezone.now() + timedelta(hours=1)).isoformat(),
            },
        )
        .json()
    )
    assert created["created_by"] == "deployer" and created["active"] is True
    assert api_as("deployer").delete(f"/api/v1/alerts/silences/{created['id']}").status_code == 204
    silence = Silence.objects.get(pk=created["id"])
    assert silence.expired_at is not None and not silence.is_active()


class Markup(HTMLParser):
    """Start tags with their attributes, and the page's <style> text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.style = ""
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data

    def first(self, tag: str, **attrs: str) -> dict[str, str]:
        return next(
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        )

    def actionable_teams(self) -> str:
        """What the incident list says about the viewer."""
        table = next(a for t, a in self.tags if t == "table" and "sb-incidents" in a["class"])
        return table["data-actionable-teams"]


def incidents_page(user: Any) -> Markup:
    client = Client()
    client.force_login(user)
    return Markup(client.get("/alerts/").content.decode())


def shown_for(style: str, team: str) -> bool:
    """Does the page's rule show a row of `team`'s buttons? (What the browser applies.)"""
    return (
        f'.sb-incidents[data-actionable-teams~="{team}"] tr[data-team="{team}"] .sb-actions '
        "{ display: inline; }" in style
    )


@pytest.mark.django_db
def test_every_viewer_gets_the_same_row_and_the_page_says_whose_buttons_show(world: Any) -> None:
    # given a firing incident of payments
    incident = firing(world)
    row_id = f"incident-{incident.pk}"
    # when a deployer of payments, a viewer of payments and an owner of search open the list
    deployer, viewer, outsider = (
        incidents_page(world.deployer),
        incidents_page(world.viewer),
        incidents_page(world.outsider),
    )
    # then every one of them gets the row with its team and its buttons (as a live push would)
    for page in (deployer, viewer, outsider):
        assert page.first("tr", id=row_id)["data-team"] == "payments"
        assert page.first("form", action=f"/alerts/incidents/{incident.pk}/acknowledge")
        assert ".sb-incidents tr[data-team] .sb-actions { display: none; }" in page.style
    # and the table names the teams the viewer may act for, whose buttons the style shows
    assert deployer.actionable_teams() == "payments"
    assert shown_for(deployer.style, "payments")
    assert viewer.actionable_teams() == ""
    assert not shown_for(viewer.style, "payments")
    assert outsider.actionable_teams() == "search"
    assert shown_for(outsider.style, "search") and not shown_for(outsider.style, "payments")
    # and platform admins may act on everything
    admin = incidents_page(world.admin)
    assert admin.actionable_teams() == "*"
    assert '.sb-incidents[data-actionable-teams="*"] tr[data-team] .sb-actions' in admin.style


@pytest.mark.django_db
def test_a_live_row_carries_its_team_and_the_server_still_refuses_a_viewer(world: Any) -> None:
    # given the row pushed live when the incident fired (rendered once, for every viewer)
    incident = firing(world)
    event = Event.objects.get(action="incident.firing")
    pushed = dict(incident_fragments(event))["incidents"]  # type: ignore[arg-type]
    row = Markup(pushed).first("tr", id=f"incident-{incident.pk}")
    assert row["data-team"] == "payments"
    assert f"/alerts/incidents/{incident.pk}/acknowledge" in pushed
    # when a viewer of payments (who sees no buttons) posts the acknowledge anyway
    viewer = Client()
    viewer.force_login(world.viewer)
    answer = viewer.post(f"/alerts/incidents/{incident.pk}/acknowledge")
    # then the server refuses, and the incident is still firing
    assert answer.status_code == 403
    incident.refresh_from_db()
    assert incident.state == IncidentState.FIRING


@pytest.mark.django_db
def test_acknowledging_from_the_page_swaps_the_row(world: Any) -> None:
    incident = firing(world)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.deployer)
    page = client.get(f"/alerts/incidents/{incident.pk}/")
    token = page.context["csrf_token"]
    row = client.post(
        f"/alerts/incidents/{incident.pk}/acknowledge",
        HTTP_HX_REQUEST="true",
        HTTP_X_CSRFTOKEN=str(token),
    )
    assert row.status_code == 200
    assert "Acknowledged" in row.content.decode()
    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED
    outsider = Client()
    outsider.force_login(world.outsider)
    assert outsider.post(f"/alerts/incidents/{incident.pk}/resolve").status_code == 403


@pytest.mark.django_db
def test_the_incident_page_shows_the_timeline(world: Any) -> None:
    incident = firing(world)
    client = Client()
    client.force_login(world.viewer)
    page = client.get(f"/alerts/incidents/{incident.pk}/").content.decode()
    assert "Timeline" in page and "all instances failing" in page


@pytest.mark.django_db
def test_each_incident_event_renders_its_row_once_for_the_live_pages(world: Any) -> None:
    incident = firing(world)
    event = Event.objects.get(action="incident.firing")
    fragments = {topic: html for topic, html in incident_fragments(event)}  # type: ignore[misc]
    assert set(fragments) == {"incidents", f"incident:{incident.pk}"}
    assert 'hx-swap-oob="afterbegin:#incident-rows"' in fragments["incidents"]
    assert f'id="incident-{incident.pk}"' in fragments["incidents"]


@pytest.mark.django_db
def test_owners_manage_channels_and_routes_and_send_tests_from_the_page(
    world: Any, receiver: Any
) -> None:
    client = Client()
    client.force_login(world.owner)
    url = "/alerts/teams/payments/"
    client.post(
        url,
        {
            "what": "channel",
            "channel-name": "ops-hook",
            "channel-kind": "webhook",
            "channel-url": receiver.url("/hook"),
            "channel-secret": "0123456789abcdef0123",
        },
    )
    channel = world.team.alert_channels.get(name="ops-hook")
    client.post(
        url,
        {
            "what": "route",
            "route-severity": "page",
            "route-channel": channel.pk,
            "route-escalation_level": 0,
            "route-group_wait_seconds": 0,
        },
    )
    assert world.team.alert_routes.filter(channel=channel).exists()
    client.post(url, {"what": "test", "channel": channel.pk})
    assert receiver.wait_for("/hook", 1)[0].json()["action"] == "test"
    page = client.get(url).content.decode()
    assert "0123456789abcdef0123" not in page and "••••••••0123" in page
    viewer = Client()
    viewer.force_login(world.viewer)
    assert viewer.get(url).status_code == 403


@pytest.mark.django_db
def test_the_alerts_menu_links_a_few_teams_settings_however_many_an_admin_owns(
    world: Any,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from alerts.views import NAV_TEAMS
    from catalog.models import Team

    client = Client()
    client.force_login(world.admin)

    def menu() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as queries:
            page = client.get("/alerts/").content.decode()
        return page[page.index('<nav aria-label="alerts">') :].split("</nav>")[0], len(queries)

    few, queries = menu()
    assert few.count("alert settings</a>") == Team.objects.count() and "more team" not in few
    Team.objects.bulk_create(Team(slug=f"team-{n:03}", name=f"Team {n}") for n in range(300))
    many, more_queries = menu()
    assert many.count("alert settings</a>") == NAV_TEAMS
    assert f"and {Team.objects.count() - NAV_TEAMS} more teams" in many
    assert more_queries == queries
    # a team owner still finds their own team's settings in the menu
    client.force_login(world.owner)
    assert '/alerts/teams/payments/"' in menu()[0]
