"""Home: what needs attention now, in a bounded number of queries, pushed live."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from alerts.choices import IncidentState
from circuits.choices import AggregateState
from controlplane.events import publish
from controlplane.live import COALESCE_WINDOW_SECONDS
from dashboard.home import SERVICE_TILES
from dashboard.tests.conftest import circuit, incident, rollout
from health.choices import ServiceStatus
from health.models import ServiceHealth

pytestmark = pytest.mark.django_db
MAX_QUERIES = 20


def home_as(user: Any) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def test_it_lists_firing_incidents_unhealthy_services_rollouts_and_open_circuits(
    world: Any,
) -> None:
    # given one of each kind of trouble
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DOWN,
        failing=3, reason="3 of 3 instances failing",
    )  # fmt: skip
    incident(world, world.service, "checkout is down")
    rollout(world, world.other_service, to_version="7.1.0")
    circuit(world, world.other_service, world.service, AggregateState.OPEN, "checkout-client")
    # when the viewer opens home
    page = home_as(world.viewer)
    # then each shows, in words, and the tab title counts the problems (incident, down, circuit)
    assert "<title>(3) Home · Signalbox</title>" in page
    assert "3 problems" in page
    assert "checkout is down" in page
    assert 'id="home-tile-' in page and "3 of 3 instances failing" in page
    assert "7.1.0" in page and "Progressing" in page
    assert "indexer</strong> → checkout" in page and "Open" in page


def test_it_says_all_clear_when_nothing_needs_attention(world: Any) -> None:
    page = home_as(world.viewer)
    assert "<title>Home · Signalbox</title>" in page
    assert "All clear" in page
    assert "No open incidents." in page
    assert "No rollout is running." in page


def test_acknowledged_incidents_show_but_do_not_count_as_problems(world: Any) -> None:
    incident(world, world.service, "checkout is slow", state=IncidentState.ACKNOWLEDGED)
    page = home_as(world.viewer)
    assert "checkout is slow" in page
    assert "All clear" in page


def test_only_deployers_see_the_acknowledge_button(world: Any) -> None:
    firing = incident(world, world.service, "checkout is down")
    button = f"/alerts/incidents/{firing.pk}/acknowledge"
    assert button in home_as(world.deployer)
    assert button not in home_as(world.viewer)


def count_home_queries(user: Any) -> int:
    client = Client()
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    return len(queries)


def test_it_runs_the_same_number_of_queries_for_10_and_1000_services(
    world: Any, fleet: Any
) -> None:
    # given 10 services, a tenth of them down, with incidents, rollouts and open circuits
    fleet(10)
    small = count_home_queries(world.viewer)
    # when the fleet grows a hundredfold
    fleet(1000)
    large = count_home_queries(world.viewer)
    # then home asks the database the same number of questions, and few
    assert small == large
    assert large <= MAX_QUERIES
    # and it shows a screenful of the 101 down services, saying how many more there are
    page = home_as(world.viewer)
    assert page.count('class="sb-tile sb-tile-down"') == SERVICE_TILES
    assert f"101 unhealthy in all ({SERVICE_TILES} shown)" in page


@pytest.mark.django_db(transaction=True)
def test_a_service_going_down_pushes_homes_tiles_and_count(world: Any, pushes: Any) -> None:
    # given a page listening to home
    home = pushes("dashboard:home")
    # when checkout goes down and that is published
    with transaction.atomic():
        ServiceHealth.objects.create(
            service=world.service, environment=world.production, status=ServiceStatus.DOWN,
            failing=2, reason="2 of 2 instances failing",
        )  # fmt: skip
        publish(
            "health.service.changed", subject=world.service, environment=world.production,
            payload={"from": "healthy", "to": "down", "reason": "2 of 2 instances failing"},
        )  # fmt: skip
    # then home's services section arrives with checkout's tile, and the summary with its count
    tiles = home.wait_for('id="home-services"')
    assert 'hx-swap-oob="true"' in tiles
    assert f'id="home-tile-{world.service.pk}-{world.production.pk}"' in tiles
    summary = home.wait_for('id="home-summary"')
    assert 'data-problems="1"' in summary


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_changes_is_rendered_at_most_twice_per_window(world: Any, pushes: Any) -> None:
    # given a page listening to home
    home = pushes("dashboard:home")
    # when twenty rollout events commit one after another
    started = rollout(world, world.service)
    began = time.monotonic()
    for step in range(20):
        with transaction.atomic():
            publish("rollout.step_started", subject=started, payload={"step": step})
    elapsed = time.monotonic() - began
    # then the rollouts section was rendered at the first change and then once per window
    # that saw changes, not once per event
    home.wait_for(f'id="active-rollout-{started.pk}"')
    with pytest.raises(AssertionError):
        home.wait_for("never pushed", timeout=1.0)
    sections = [html for html in home.seen if 'id="home-rollouts"' in html]
    windows = math.ceil(elapsed / COALESCE_WINDOW_SECONDS)
    assert 1 <= len(sections) <= 1 + windows < 20


@pytest.mark.django_db(transaction=True)
def test_a_firing_incident_is_pushed_with_its_acknowledge_button(world: Any, pushes: Any) -> None:
    # given a page listening to home
    home = pushes("dashboard:home")
    # when an incident fires
    with transaction.atomic():
        fired = incident(world, world.service, "checkout is down")
        publish("incident.firing", subject=world.service, payload={"incident": fired.pk})
    # then home's incidents section arrives with its row, and the button (the server decides
    # who may press it: the fragment is rendered once for every viewer)
    section = home.wait_for('id="home-incidents"')
    assert f'id="incident-{fired.pk}"' in section
    assert f"/alerts/incidents/{fired.pk}/acknowledge" in section


@pytest.mark.django_db(transaction=True)
def test_every_event_heads_the_timeline_as_a_row_of_its_own(world: Any, pushes: Any) -> None:
    # given a page listening to home
    home = pushes("dashboard:home")
    # when thirty events commit one after another
    events = []
    for n in range(30):
        with transaction.atomic():
            events.append(publish("token.issued", subject=world.team, message=f"n{n}"))
    # then each one's row is pushed to go on top of home's timeline (the page keeps ten),
    # none is lost to a re-rendered section, and the section itself is not pushed
    for event in events:
        row = home.wait_for(f'id="event-{event.pk}"')
        # (wrapped in <template> so the browser parses a bare table row; see signalbox.js)
        assert row.strip().startswith(
            '<template><tbody hx-swap-oob="afterbegin:#home-event-rows">'
        )
    assert not [html for html in home.seen if 'id="home-events"' in html]


def test_home_renders_its_ten_newest_events_in_a_list_that_takes_pushed_rows(
    world: Any, client: Client
) -> None:
    for n in range(12):
        publish("token.issued", subject=world.team, message=f"n{n}")
    client.force_login(world.viewer)
    html = client.get("/").content.decode()
    assert 'id="home-event-rows" data-live-refresh data-live-limit="10"' in html
    assert html.count('<tr id="event-') == 10
    assert "n11" in html and "n1<" not in html


def test_the_pushed_summary_reads_counts_not_rows(world: Any, fleet: Any) -> None:
    from dashboard import sections

    fleet(100)
    # when the summary (pushed after every home section's change) is rendered
    with CaptureQueriesContext(connection) as queries:
        html = sections.render_home("summary")
    # then it asks only for the four sections' counts, and shows them
    assert len(queries) == 4
    assert all("COUNT(" in q["sql"] for q in queries.captured_queries)
    assert "10 down" in html and "problems" in html
