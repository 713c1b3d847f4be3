"""GET /api/v1/circuits and /api/v1/circuits/scrape-targets: the list filters."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import ExternalDependency
from circuits.choices import AggregateState, ScrapeKind
from circuits.models import Circuit, ScrapeTarget

pytestmark = pytest.mark.django_db

CIRCUITS = "/api/v1/circuits"
SCRAPE_TARGETS = "/api/v1/circuits/scrape-targets"


def circuit(name: str, owner: Any, environment: Any, state: str, **target: Any) -> Circuit:
    return Circuit.objects.create(
        name=name, service=owner, environment=environment, state=state, **target
    )


@pytest.fixture
def circuits(world: Any) -> None:
    """checkout calls indexer (open) and Stripe (closed, in staging); indexer calls checkout."""
    stripe = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    checkout, indexer = world.service, world.other_service
    production, staging = world.production, world.staging
    opened, closed = AggregateState.OPEN, AggregateState.CLOSED
    circuit("search", checkout, production, opened, protects_service=indexer)
    circuit("payments", checkout, staging, closed, protects_external=stripe)
    circuit("checkout", indexer, production, closed, protects_service=checkout)


def names(response: Any) -> set[str]:
    assert response.status_code == 200, response.json()
    return {c["name"] for c in response.json()["results"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"search", "payments", "checkout"}),
        ("?team=payments", {"search", "payments"}),
        ("?service=indexer", {"checkout"}),
        ("?environment=staging", {"payments"}),
        ("?state=open", {"search"}),
        ("?protects=indexer", {"search"}),
        ("?protects=external:stripe", {"payments"}),
        ("?team=payments&environment=production&state=open", {"search"}),
    ],
)
def test_it_filters_circuits(circuits: None, api_as: Any, query: str, expected: set[str]) -> None:
    assert names(api_as("viewer").get(CIRCUITS + query)) == expected


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("?state=ajar", "state"),
        ("?service=nowhere", "service"),
        ("?team=nobody", "team"),
        ("?environment=moon", "environment"),
        ("?protects=external:nothing", "protects"),
    ],
)
def test_it_answers_400_naming_a_bad_filter_value(
    circuits: None, api_as: Any, query: str, parameter: str
) -> None:
    response = api_as("viewer").get(CIRCUITS + query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("invalid", [parameter])


def test_it_filters_scrape_targets(world: Any, api_as: Any) -> None:
    # given a target of each kind, in two environments
    for kind, environment in (
        (ScrapeKind.PROMETHEUS, world.production),
        (ScrapeKind.HYSTRIX, world.staging),
    ):
        ScrapeTarget.objects.create(
            kind=kind,
            url=f"http://10.0.0.1:8080/{kind}",
            service=world.service,
            environment=environment,
            instance_key="10.0.0.1:8080",
        )
    client = api_as("viewer")
    # when the list is filtered, then only the matching targets are listed
    kinds = [t["kind"] for t in client.get(f"{SCRAPE_TARGETS}?kind=hystrix").json()["results"]]
    assert kinds == [ScrapeKind.HYSTRIX]
    in_production = client.get(f"{SCRAPE_TARGETS}?service=checkout&environment=production")
    assert [t["kind"] for t in in_production.json()["results"]] == [ScrapeKind.PROMETHEUS]
    # and an unknown kind is refused, naming the parameter
    refused = client.get(f"{SCRAPE_TARGETS}?kind=statsd")
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["kind"]
