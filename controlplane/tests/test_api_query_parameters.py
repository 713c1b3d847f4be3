"""Query parameters an endpoint does not read answer 400 naming them (a typo never changes
the answer), while every parameter an endpoint documents keeps working."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import resolve, reverse
from rest_framework.generics import GenericAPIView

from catalog.tests.matrix import api_endpoints
from circuits.models import Circuit

pytestmark = pytest.mark.django_db
TYPO = "stat"


def list_endpoints() -> list[str]:
    """Every GET under /api/v1/ without a path parameter whose view lists rows (the generic
    views, viewsets' lists included), whichever app added it."""
    found = []
    for endpoint in api_endpoints():
        if "GET" not in endpoint.methods or re.search(r"<|\(\?P", endpoint.pattern):
            continue
        path = reverse(str(endpoint.route))
        if issubclass(resolve(path).func.cls, GenericAPIView):  # type: ignore[attr-defined]
            found.append(path)
    return sorted(found)


def refused(response: Any, name: str) -> list[str]:
    """The allowed parameters, as a 400 naming `name` lists them."""
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["fields"]) == [name]
    (reason,) = error["fields"][name]
    prefix = "unknown parameter; the allowed parameters are: "
    assert reason.startswith(prefix)
    assert error["message"] == f"{name}: {reason}"
    return str(reason).removeprefix(prefix).split(", ")


def test_the_api_has_list_endpoints_to_check() -> None:
    # given the URL resolver
    # when the list endpoints are picked out
    paths = list_endpoints()
    # then every app's lists are among them (so the test below checks each)
    for path in (
        "/api/v1/services",
        "/api/v1/rollouts",
        "/api/v1/health/teams",
        "/api/v1/circuits/overrides",
        "/api/v1/alerts/rules",
    ):
        assert path in paths


@pytest.mark.parametrize("path", list_endpoints())
def test_every_list_refuses_a_parameter_it_does_not_read(api_as: Any, path: str) -> None:
    # when a list is asked for with a misspelt parameter
    response = api_as("admin").get(path, {TYPO: "down"})
    # then the answer is a 400 naming it, listing what the list takes instead
    allowed = refused(response, TYPO)
    assert "format" in allowed


def test_the_error_lists_the_filters_pagination_search_and_ordering(api_as: Any) -> None:
    # when
    response = api_as("viewer").get("/api/v1/services", {"stat": "down", "team": "payments"})
    # then
    assert refused(response, "stat") == [
        "dependency_of",
        "depends_on",
        "external",
        "format",
        "ordering",
        "page",
        "page_size",
        "search",
        "team",
        "tier",
    ]


def test_each_unknown_parameter_is_named(api_as: Any) -> None:
    # when two parameters are misspelt
    response = api_as("viewer").get("/api/v1/health/services", {"stat": "down", "evn": "prod"})
    # then each is named with what the list takes (as docs/api.md shows it)
    assert response.status_code == 400
    allowed = "environment, format, page, page_size, service, status, team"
    reason = f"unknown parameter; the allowed parameters are: {allowed}"
    assert response.json()["error"]["fields"] == {"evn": [reason], "stat": [reason]}


def test_the_old_alerts_filter_name_is_refused_not_ignored(api_as: Any) -> None:
    response = api_as("viewer").get("/api/v1/alerts/rules", {"team__slug": "payments"})
    assert "team" in refused(response, "team__slug")


@pytest.mark.parametrize(
    "query",
    [
        {"team": "payments", "tier": "1", "search": "check", "ordering": "-slug"},
        {"page": "1", "page_size": "10", "format": "json"},
        {"depends_on": "checkout", "dependency_of": "checkout"},
    ],
)
def test_a_list_s_documented_parameters_keep_working(api_as: Any, query: dict[str, str]) -> None:
    assert api_as("viewer").get("/api/v1/services", query).status_code == 200


@pytest.fixture
def circuit(world: Any) -> Circuit:
    return Circuit.objects.create(
        service=world.service, environment=world.production, name="payments-api"
    )


@pytest.mark.parametrize(
    ("path", "query"),
    [
        # history ranges: an APIView reading its own parameters
        ("/api/v1/health/history", {"service": "checkout", "environment": "staging"}),
        ("/api/v1/health/history", {"service": "indexer", "environment": "staging", "range": "1h"}),
        # a detail action reading its own parameter
        ("/api/v1/circuits/{circuit}/history", {"hours": "2"}),
        # what services poll for (with ETags), and the dependency edges
        ("/api/v1/circuits/overrides", {"service": "checkout", "environment": "production"}),
        ("/api/v1/dependencies", {"service": "checkout", "environment": "production"}),
        # a detail still narrowed by its list's filters
        ("/api/v1/services/checkout", {"team": "payments"}),
        ("/api/v1/circuits/{circuit}", {"format": "json"}),
    ],
)
def test_endpoints_that_read_their_own_parameters_keep_working(
    api_as: Any, circuit: Circuit, path: str, query: dict[str, str]
) -> None:
    response = api_as("viewer").get(path.format(circuit=circuit.pk), query)
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/health/history", ["environment", "format", "range", "service"]),
        ("/api/v1/dependencies", ["environment", "format", "service"]),
        ("/api/v1/circuits/overrides", ["environment", "format", "service"]),
    ],
)
def test_endpoints_that_read_their_own_parameters_refuse_others(
    api_as: Any, path: str, allowed: list[str]
) -> None:
    query = {"service": "checkout", "environment": "production", "rnage": "7d"}
    assert refused(api_as("viewer").get(path, query), "rnage") == allowed


def test_a_detail_action_refuses_what_it_does_not_read(api_as: Any, circuit: Circuit) -> None:
    response = api_as("viewer").get(f"/api/v1/circuits/{circuit.pk}/history", {"hour": "2"})
    assert "hours" in refused(response, "hour")


def test_an_override_poll_still_answers_304_when_nothing_changed(
    api_as: Any, world: Any
) -> None:
    # given a first poll's ETag
    client = api_as("viewer")
    query = {"service": "checkout", "environment": "production"}
    tag = client.get("/api/v1/circuits/overrides", query)["ETag"]
    # when the service polls again with it
    again = client.get("/api/v1/circuits/overrides", query, HTTP_IF_NONE_MATCH=tag)
    # then
    assert again.status_code == 304
