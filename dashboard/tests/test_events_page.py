"""The Events page: the audit log, filtered and paged on the server, in bounded queries."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Service, Team
from controlplane.events import publish
from controlplane.models import Event
from controlplane.timeline import PAGE_SIZE

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client: Client, world: Any) -> Client:
    client.force_login(world.viewer)
    return client


def shown(response: Any) -> list[int]:
    """The event ids in the timeline, top to bottom."""
    return [int(pk) for pk in re.findall(r'<tr id="event-(\d+)">', response.content.decode())]


def live_topics(response: Any) -> str:
    match = re.search(r'<meta name="sb-live-topics" content="([^"]*)">', response.content.decode())
    assert match, "a logged-in page declares its live topics"
    return match.group(1)


def test_it_sends_an_anonymous_visitor_to_log_in(client: Client) -> None:
    response = client.get("/events/?team=payments")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/events/%3Fteam%3Dpayments"


def test_it_shows_the_newest_events_first_and_live(viewer: Client, world: Any) -> None:
    # given
    older = publish("service.updated", actor=world.owner, subject=world.service)
    newer = publish("rollout.created", actor=world.deployer, subject=world.service)
    # when
    response = viewer.get("/events/")
    # then
    assert shown(response) == [newer.pk, older.pk]
    assert live_topics(response) == "events"
    assert 'id="live-events"' in response.content.decode()


def test_it_offers_the_catalog_in_its_filters(viewer: Client, world: Any) -> None:
    page = viewer.get("/events/").content.decode()
    for slug in ["payments", "search", "checkout", "indexer", "staging", "production"]:
        assert f'<option value="{slug}"' in page
    assert '<option value="viewer">' in page  # actor suggestions
    assert '<option value="rollout.">' in page  # action families


def test_choosing_a_team_narrows_the_services_offered(viewer: Client, world: Any) -> None:
    page = viewer.get("/events/?team=search").content.decode()
    assert '<option value="indexer"' in page
    assert '<option value="checkout"' not in page


def test_past_a_few_hundred_services_the_filter_takes_a_slug(
    viewer: Client, world: Any, fleet: Any
) -> None:
    from dashboard.views import SERVICE_OPTIONS

    def service_filter(query: str) -> tuple[str, int]:
        with CaptureQueriesContext(connection) as queries:
            page = viewer.get(f"/events/{query}").content.decode()
        return page[page.index("<label>Service") :].split("</label>")[0], len(queries)

    small, few = service_filter("")
    assert '<select name="service">' in small and '<option value="checkout"' in small
    made = fleet(SERVICE_OPTIONS)  # now more services than the list holds
    large, many = service_filter("?service=checkout")
    assert '<select name="service">' not in large and "<option" not in large
    assert 'name="service" value="checkout"' in large  # the filter in force is shown
    assert many == few  # the list is read capped: the same one query
    # a team's services are still a list to choose from
    team = made.services[0].team.slug
    listed, _ = service_filter(f"?team={team}")
    assert f'<option value="{made.services[0].slug}"' in listed


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("team=search", ["indexer-deploy"]),
        ("service=checkout", ["checkout-deploy", "checkout-incident"]),
        ("environment=production", ["checkout-incident"]),
        ("actor=deployer", ["checkout-deploy"]),
        ("action=rollout.", ["indexer-deploy", "checkout-deploy"]),
        ("action=incident.firing", ["checkout-incident"]),
        ("team=payments&action=rollout.", ["checkout-deploy"]),
        ("team=nonexistent", []),
    ],
)
def test_it_filters_the_timeline(
    viewer: Client, world: Any, query: str, expected: list[str]
) -> None:
    # given three events across teams, services, environments and actors
    made = {
        "checkout-deploy": publish("rollout.created", actor=world.deployer, subject=world.service),
        "indexer-deploy": publish(
            "rollout.created", actor=world.outsider, subject=world.other_service
        ),
        "checkout-incident": publish(
            "incident.firing", actor="alerts", subject=world.service, environment=world.production
        ),
    }
    # when
    response = viewer.get(f"/events/?{query}")
    # then
    names = {event.pk: name for name, event in made.items()}
    assert sorted(names[pk] for pk in shown(response)) == sorted(expected)
    assert live_topics(response) == ""  # a filtered view does not move under the reader
    assert "Clear filters" in response.content.decode()


def test_it_pages_through_the_whole_log_without_gaps_or_repeats(viewer: Client, world: Any) -> None:
    # given more than two pages of events
    Event.objects.bulk_create(
        Event(action="service.updated", subject_label=f"change {n}", team=world.team)
        for n in range(PAGE_SIZE * 2 + 7)
    )
    everything = list(Event.objects.values_list("pk", flat=True))  # the model's order
    # when the reader follows "Older" to the end
    pages = [viewer.get("/events/")]
    while match := re.search(
        r'href="(\?[^"]*before=[^"]+)" rel="next"', pages[-1].content.decode()
    ):
        pages.append(viewer.get("/events/" + match.group(1).replace("&amp;", "&")))
    # then every event was shown once, in order, and only the first page is live
    assert [len(shown(page)) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 7]
    assert [pk for page in pages for pk in shown(page)] == everything
    assert [live_topics(page) for page in pages] == ["events", "", ""]
    # and "Newer" from the last page leads back to the middle one
    newer = re.search(r'href="(\?[^"]*after=[^"]+)" rel="prev"', pages[2].content.decode())
    assert newer
    assert shown(viewer.get("/events/" + newer.group(1))) == shown(pages[1])


def test_a_malformed_page_position_shows_the_latest_page(viewer: Client, world: Any) -> None:
    event = publish("service.updated", subject=world.service)
    assert shown(viewer.get("/events/?before=yesterday")) == [event.pk]


def test_it_runs_as_many_queries_for_200_events_as_for_10(viewer: Client, world: Any) -> None:
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert viewer.get("/events/").status_code == 200
        return len(queries)

    def add_events(count: int) -> None:
        # Each event on its own team and service, so a missing join would show as N+1.
        start = Event.objects.count()
        teams = Team.objects.bulk_create(
            Team(slug=f"team-{start + n}", name=f"Team {start + n}") for n in range(count)
        )
        services = Service.objects.bulk_create(
            Service(slug=f"svc-{team.slug}", name=team.name, team=team) for team in teams
        )
        Event.objects.bulk_create(
            Event(action="rollout.created", actor_label="deployer", actor_user=world.deployer,
                  subject_label=service.slug, team=service.team, service=service,
                  environment=world.staging)
            for service in services
        )  # fmt: skip

    add_events(10)
    with_ten = queries_for_page()
    add_events(190)
    assert queries_for_page() == with_ten
    assert with_ten <= 10
