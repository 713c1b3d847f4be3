"""A team's page: its services' health per environment, rollouts, incidents, circuits."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from circuits.choices import AggregateState
from controlplane.events import publish
from dashboard.tests.conftest import circuit, incident, rollout
from health.choices import ServiceStatus
from health.models import ServiceHealth

pytestmark = pytest.mark.django_db
MAX_QUERIES = 20


def page_as(user: Any, path: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_the_teams_services_in_each_environment_and_its_trouble(world: Any) -> None:
    # given checkout is down in production, with an incident, a rollout and an open circuit
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DOWN, failing=2
    )
    ServiceHealth.objects.create(
        service=world.service, environment=world.staging, status=ServiceStatus.HEALTHY, passing=2
    )
    incident(world, world.service, "checkout is down")
    rollout(world, world.service, to_version="1.9.0")
    circuit(world, world.service, world.other_service, AggregateState.OPEN, "indexer-client")
    # when a member opens the team page
    page = page_as(world.viewer, "/catalog/teams/payments/")
    # then checkout's row says down in production and healthy in staging, in words
    row = page.split(f'id="team-service-{world.service.pk}"')[1].split("</tr>")[0]
    assert "Staging" in page and "Production" in page
    assert "healthy" in row and "down" in row
    assert "checkout is down" in page
    assert "1.9.0" in page
    assert "indexer-client" in page
    # and the other team's service is not listed
    assert f'id="team-service-{world.other_service.pk}"' not in page


def test_an_owner_finds_the_alert_settings(world: Any) -> None:
    assert "/alerts/teams/payments/" in page_as(world.owner, "/catalog/teams/payments/")
    assert "/alerts/teams/payments/" not in page_as(world.viewer, "/catalog/teams/payments/")


def test_its_queries_do_not_grow_with_the_fleet(world: Any, fleet: Any) -> None:
    def count() -> int:
        client = Client()
        client.force_login(world.viewer)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/catalog/teams/payments/").status_code == 200
        return len(queries)

    fleet(10)
    small = count()
    fleet(1000)
    assert count() == small <= MAX_QUERIES


@pytest.mark.django_db(transaction=True)
def test_a_health_change_pushes_the_teams_services(world: Any, pushes: Any) -> None:
    page = pushes("dashboard:team.payments")
    with transaction.atomic():
        ServiceHealth.objects.create(
            service=world.service,
            environment=world.production,
            status=ServiceStatus.DEGRADED,
            passing=1,
            failing=1,
        )
        publish(
            "health.service.changed",
            subject=world.service,
            environment=world.production,
            payload={"from": "healthy", "to": "degraded", "reason": "1 of 2 failing"},
        )
    section = page.wait_for('id="team-services-payments"')
    assert "degraded" in section
    assert "health.service.changed" in page.wait_for("afterbegin:#team-events")
