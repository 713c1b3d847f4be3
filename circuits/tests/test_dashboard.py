"""The circuits grid and a circuit's page: worst first, filtered, bounded queries, overrides."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Service
from circuits.models import Circuit, CircuitOverride
from circuits.tests.conftest import batch, report

URL = "/api/v1/circuits/reports"


def browser(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def tiles(html: str) -> list[tuple[str, str, str]]:
    """(calling service, circuit, state label) of each tile, in page order."""
    return re.findall(r'class="sb-tile"[^>]*aria-label="([\w-]+) ([\w-]+) ([\w ]+)"', html)


def csrf(client: Client, url: str) -> str:
    page = client.get(url).content.decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


@pytest.fixture
def fleet(world: Any, reporter: Any) -> None:
    """Three circuits of checkout: closed, open on one of two instances, half open."""
    reporter.post(
        URL,
        batch(
            report("auth", instance="a:1", calls=40, failure_rate=1.0),
            report("indexer", instance="a:1", calls=40, failure_rate=2.0),
            report("indexer", instance="b:1", state="open", calls=60, failure_rate=75.0),
            report("stripe", instance="a:1", state="half_open", calls=3),
        ),
        format="json",
    )


@pytest.mark.django_db
def test_the_grid_shows_the_worst_circuits_first(world: Any, fleet: None) -> None:
    page = browser(world.viewer).get("/circuits/")
    assert page.status_code == 200
    html = page.content.decode()
    assert tiles(html) == [
        ("checkout", "indexer", "Open"),
        ("checkout", "stripe", "Half open"),
        ("checkout", "auth", "Closed"),
    ]
    assert "1/2 open" in html and "45.8%" in html  # (2*40 + 75*60) / (40 + 60)


@pytest.mark.django_db
def test_the_grid_filters_by_team_and_service(world: Any, fleet: None, reporter: Any) -> None:
    Service.objects.create(slug="billing", name="Billing", team=world.team)
    reporter.post(URL, batch(report("ledger"), service="billing"), format="json")
    viewer = browser(world.viewer)
    by_service = viewer.get("/circuits/", {"service": "billing"}).content.decode()
    assert tiles(by_service) == [("billing", "ledger", "Closed")]
    by_team = viewer.get("/circuits/", {"team": "payments", "state": "open"}).content.decode()
    assert tiles(by_team) == [("checkout", "indexer", "Open")]
    assert tiles(viewer.get("/circuits/", {"team": "search"}).content.decode()) == []


@pytest.mark.django_db
def test_the_grid_costs_the_same_queries_for_3_or_60_circuits(
    world: Any, fleet: None, reporter: Any
) -> None:
    viewer = browser(world.viewer)
    with CaptureQueriesContext(connection) as few:
        viewer.get("/circuits/")
    reporter.post(
        URL, batch(*[report(f"dep-{i}", instance=f"h{i % 4}:1") for i in range(57)]), format="json"
    )
    with CaptureQueriesContext(connection) as many:
        viewer.get("/circuits/")
    assert len(many) == len(few) <= 14


@pytest.mark.django_db
def test_the_circuit_page_lists_each_instance_and_its_history(world: Any, fleet: None) -> None:
    circuit = Circuit.objects.get(name="indexer")
    html = browser(world.viewer).get(f"/circuits/{circuit.pk}/").content.decode()
    assert "a:1" in html and "b:1" in html
    assert 'id="circuit-history"' in html and "uPlot.iife.min.js" in html
    assert "Only owners and deployers" in html  # a viewer gets no override controls


@pytest.mark.django_db(transaction=True)
def test_a_deployer_forces_a_circuit_open_from_its_page(world: Any, fleet: None) -> None:
    # given a deployer on the indexer circuit's page
    circuit = Circuit.objects.get(name="indexer")
    client = browser(world.deployer)
    token = csrf(client, f"/circuits/{circuit.pk}/")
    # when they force it open for an hour, in this environment only
    response = client.post(
        f"/circuits/{circuit.pk}/override",
        {
            "state": "forced_open",
            "minutes": "60",
            "reason": "indexer is melting",
            "csrfmiddlewaretoken": token,
        },
    )
    # then the override stands, and the page shows it
    assert response.status_code == 302
    override = CircuitOverride.objects.get()
    assert (override.state, override.environment, override.created_by_label) == (
        "forced_open",
        world.production,
        "deployer",
    )
    html = client.get(f"/circuits/{circuit.pk}/").content.decode()
    assert "indexer is melting" in html and "Lift override" in html


@pytest.mark.django_db
def test_an_override_without_the_csrf_token_is_refused(world: Any, fleet: None) -> None:
    circuit = Circuit.objects.get(name="indexer")
    response = browser(world.deployer).post(
        f"/circuits/{circuit.pk}/override", {"state": "forced_open", "minutes": "60", "reason": "x"}
    )
    assert response.status_code == 403
    assert not CircuitOverride.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["viewer", "outsider"])
def test_viewers_and_other_teams_may_not_force_a_circuit(
    world: Any, fleet: None, persona: str
) -> None:
    circuit = Circuit.objects.get(name="indexer")
    client = browser(getattr(world, persona))
    token = csrf(client, "/circuits/")
    response = client.post(
        f"/circuits/{circuit.pk}/override",
        {"state": "forced_open", "minutes": "60", "reason": "x", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 403
    assert not CircuitOverride.objects.exists()


@pytest.mark.django_db
def test_the_circuit_page_costs_the_same_queries_for_2_or_40_instances(
    world: Any, fleet: None, reporter: Any
) -> None:
    circuit = Circuit.objects.get(name="indexer")
    viewer = browser(world.deployer)
    with CaptureQueriesContext(connection) as few:
        viewer.get(f"/circuits/{circuit.pk}/")
    reporter.post(
        URL,
        batch(*[report("indexer", instance=f"h{i}:1", ago=1) for i in range(38)]),
        format="json",
    )
    with CaptureQueriesContext(connection) as many:
        viewer.get(f"/circuits/{circuit.pk}/")
    assert len(many) == len(few) <= 16
