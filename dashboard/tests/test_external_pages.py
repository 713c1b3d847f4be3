"""The external dependency pages: vendor status, our probe, the circuits protecting it, its
dependents and the one-line verdict; the list; the service page and circuit tiles."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import ExternalDependency
from circuits.choices import AggregateState
from circuits.models import Circuit
from health.choices import CheckStatus, ExternalState
from health.models import VendorStatus

pytestmark = pytest.mark.django_db


def page_as(user: Any, path: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def stripe(world: Any) -> ExternalDependency:
    """Stripe, used by checkout, watched on its Statuspage (API mapped) and probed by us."""
    dependency = ExternalDependency.objects.create(
        slug="stripe",
        name="Stripe",
        status_source="statuspage",
        status_page_url="https://status.stripe.com",
        status_components=["API"],
        probe_url="https://api.stripe.com/healthcheck",
    )
    world.service.external_dependencies.add(dependency)
    return dependency


def _status(dependency: ExternalDependency, **fields: Any) -> VendorStatus:
    values: dict[str, Any] = {
        "state": ExternalState.MAJOR_OUTAGE,
        "source": "statuspage",
        "summary": "API: major outage",
        "indicator": "critical",
        "indicator_description": "Major System Outage",
        "fetched_at": timezone.now(),
        "components": [
            {"id": "a1", "name": "API", "status": "major_outage", "group": False, "watched": True},
            {"id": "d1", "name": "Dashboard", "status": "degraded_performance", "group": False,
             "watched": False},
        ],
        "incidents": [
            {"id": "i1", "name": "Elevated API errors", "status": "investigating",
             "impact": "critical", "shortlink": "https://stspg.io/abc",
             "updated_at": "2026-12-03T20:00:00Z", "components": ["API"]},
        ],
        "maintenances": [
            {"id": "m1", "name": "Database upgrade", "status": "scheduled", "impact": "maintenance",
             "shortlink": "https://stspg.io/m1", "updated_at": None, "components": [],
             "scheduled_for": "2026-12-05T02:00:00Z", "scheduled_until": "2026-12-05T03:00:00Z"},
        ],
        **fields,
    }  # fmt: skip
    return VendorStatus.objects.create(dependency=dependency, **values)


def _circuit(world: Any, dependency: ExternalDependency, state: str, **fields: Any) -> Circuit:
    return Circuit.objects.create(
        service=world.service,
        environment=world.production,
        name=fields.pop("name", "stripe-api"),
        protects_external=dependency,
        state=state,
        **fields,
    )


def test_it_shows_their_page_our_circuits_the_dependents_and_one_verdict(
    world: Any, stripe: ExternalDependency
) -> None:
    # given their page says major outage and our circuit to them is open
    _status(stripe, probe_status=CheckStatus.FAIL, probe_latency_ms=5000.0,
            probe_reason="timed out")  # fmt: skip
    _circuit(world, stripe, AggregateState.OPEN, open_instances=3, total_instances=4)
    # when on-call opens the dependency's page
    html = page_as(world.viewer, "/dependencies/stripe/")
    # then one line says it all, and the details are there
    assert (
        "Their page says major outage and our probe fails and our circuit to them is open" in html
    )
    assert "Elevated API errors" in html and 'href="https://stspg.io/abc"' in html
    assert "Database upgrade" in html and "2026-12-05T02:00:00Z" in html
    assert "Components we watch" in html and "sb-status-major_outage" in html
    assert "The rest of their components (1)" in html and "Dashboard" in html
    assert "timed out" in html
    assert "3/4" in html  # instances open per circuit
    assert 'href="/catalog/services/checkout/"' in html  # the dependent
    assert "Ahead of the vendor" not in html  # their page already says so


def test_it_says_when_we_are_ahead_of_the_vendor(world: Any, stripe: ExternalDependency) -> None:
    since = timezone.now() - timedelta(minutes=7)
    _status(
        stripe,
        state=ExternalState.OPERATIONAL,
        summary="1 watched component operational",
        indicator="none",
        components=[{"id": "a1", "name": "API", "status": "operational", "watched": True}],
        incidents=[],
        probe_status=CheckStatus.FAIL,
        probe_failing_since=since,
        probe_reason="HTTP 503, expected 200",
    )
    _circuit(world, stripe, AggregateState.OPEN, state_changed_at=since + timedelta(minutes=2))
    html = page_as(world.viewer, "/dependencies/stripe/")
    local = timezone.localtime(since)
    assert (
        "our probes fail and 1 circuit open; their status page still says operational, "
        f"since {local:%H:%M}"
    ) in html
    assert "Their page says operational and our probe fails and our circuit to them is open" in html


def test_an_unwatched_dependency_says_how_to_watch_it(world: Any) -> None:
    ExternalDependency.objects.create(slug="s3", name="S3")
    html = page_as(world.viewer, "/dependencies/s3/")
    assert "Not watched (no status source)" in html
    assert "give it a status source" in html


def test_the_list_shows_every_dependency_in_bounded_queries(
    world: Any, stripe: ExternalDependency
) -> None:
    _status(stripe)
    for i in range(15):
        dep = ExternalDependency.objects.create(slug=f"saas-{i}", name=f"SaaS {i}")
        _circuit(world, dep, AggregateState.CLOSED, name=f"saas-{i}")
    client = Client()
    client.force_login(world.viewer)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/dependencies/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="vendor-row-' in html and "saas-14" in html
    assert "Their page says major outage" in html
    assert len(queries) <= 12, [q["sql"] for q in queries]


def test_the_service_page_badges_its_external_dependencies(
    world: Any, stripe: ExternalDependency
) -> None:
    _status(stripe)
    html = page_as(world.viewer, "/catalog/services/checkout/")
    assert 'href="/dependencies/stripe/"' in html
    assert "sb-status-major_outage" in html


def test_circuit_tiles_show_the_vendor_state_beside_the_circuit(
    world: Any, stripe: ExternalDependency
) -> None:
    _status(stripe)
    _circuit(world, stripe, AggregateState.OPEN)
    html = page_as(world.viewer, "/circuits/")
    assert 'data-vendor="stripe"' in html
    assert "vendor:" in html and "sb-status-major_outage" in html
