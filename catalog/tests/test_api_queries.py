"""Catalog lists run the same number of SQL queries whatever the size of the catalog."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import ApiToken, ExternalDependency, Instance, Service

pytestmark = pytest.mark.django_db

LISTS = [
    "/api/v1/teams",
    "/api/v1/memberships",
    "/api/v1/environments",
    "/api/v1/external-dependencies",
    "/api/v1/services",
    "/api/v1/instances",
    "/api/v1/tokens",
]


def grow(world: Any, start: int, count: int) -> None:
    """Add `count` services, each depending on checkout and stripe, with two instances."""
    stripe, _ = ExternalDependency.objects.get_or_create(slug="stripe", name="Stripe")
    for n in range(start, start + count):
        service = Service.objects.create(slug=f"svc-{n}", name=f"Service {n}", team=world.team)
        service.depends_on.add(world.service)
        service.external_dependencies.add(stripe)
        for env in (world.staging, world.production):
            Instance.objects.create(service=service, environment=env, host="h", port=1000 + n)
        ApiToken.issue(team=world.team, name=f"t-{n}", scopes=["read"], service=service)


def queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", LISTS)
def test_a_list_costs_the_same_for_3_or_30_rows(api_as: Any, world: Any, url: str) -> None:
    # given
    client = api_as("owner")
    grow(world, 0, 3)
    few = queries(client, url)
    # when the catalog grows tenfold
    grow(world, 3, 27)
    many = queries(client, url)
    # then
    assert many == few, f"{url}: {few} queries with 3 services, {many} with 30"
    assert many <= 8
