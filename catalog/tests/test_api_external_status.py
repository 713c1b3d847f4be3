"""An external dependency's status source through the API: validated (outbound guard on
every URL), and `status` showing what the poller saw (docs/external.md)."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import ExternalDependency
from circuits.choices import AggregateState
from circuits.models import Circuit
from controlplane.models import Event
from health.choices import CheckStatus, ExternalState
from health.models import VendorStatus

pytestmark = pytest.mark.django_db

URL = "/api/v1/external-dependencies"


def _fields(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    return dict(response.json()["error"]["fields"])


def test_an_admin_sets_a_statuspage_source_with_components(api_as: Any) -> None:
    response = api_as("admin").post(
        URL,
        {
            "slug": "stripe",
            "name": "Stripe",
            "status_source": "statuspage",
            "status_page_url": "https://status.stripe.com/",
            "status_components": ["API", " Checkout "],
            "probe_url": "https://api.stripe.com/healthcheck",
            "status_interval_seconds": 30,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    stripe = ExternalDependency.objects.get(slug="stripe")
    assert stripe.status_components == ["API", "Checkout"]
    assert stripe.probe_expected_status == 200
    assert response.json()["status"] is None  # not polled yet
    assert Event.objects.filter(action="external_dependency.created").exists()


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"status_source": "rss"}, "status_source", "'rss' is not a status source; use one of"),
        ({"status_source": "statuspage"}, "status_page_url", "needs the page's base URL"),
        ({"status_source": "probe"}, "probe_url", "needs the URL to probe"),
        ({"status_page_url": "not a url"}, "status_page_url", "Enter a valid URL"),
        ({"status_page_url": "ftp://status.example.com"}, "status_page_url", "http:// or https://"),
        ({"probe_url": "http://169.254.169.254/latest/meta-data"}, "probe_url",
         "refused: 169.254.169.254 is a cloud metadata address"),
        ({"status_page_url": "http://[fe80::1]/"}, "status_page_url", "link-local"),
        ({"status_components": ["API", "api"]}, "status_components", "lists a component twice"),
        ({"status_components": [""]}, "status_components.0", "may not be blank"),
        ({"status_components": "API"}, "status_components", "list"),
        ({"status_interval_seconds": 1}, "status_interval_seconds", "greater than or equal to 10"),
        ({"probe_expected_status": 700}, "probe_expected_status", "less than or equal to 599"),
    ],
)  # fmt: skip
def test_bad_status_sources_are_400s_naming_the_field(
    api_as: Any, body: dict[str, Any], field: str, reason: str
) -> None:
    response = api_as("admin").post(URL, {"slug": "x", "name": "X", **body}, format="json")
    fields = _fields(response)
    assert field in fields, fields
    assert any(reason in r for r in fields[field]), fields[field]
    assert not ExternalDependency.objects.filter(slug="x").exists()


def test_changing_the_source_needs_its_url_and_keeps_the_row_unchanged(api_as: Any) -> None:
    ExternalDependency.objects.create(slug="s3", name="S3")
    response = api_as("admin").patch(f"{URL}/s3", {"status_source": "probe"}, format="json")
    assert "probe_url" in _fields(response)
    assert ExternalDependency.objects.get(slug="s3").status_source == "none"


def test_a_team_owner_cannot_change_a_status_source(api_as: Any) -> None:
    ExternalDependency.objects.create(slug="s3", name="S3")
    response = api_as("owner").patch(f"{URL}/s3", {"status_source": "none"}, format="json")
    assert response.status_code == 403


def test_status_shows_what_the_poller_saw_and_whether_we_are_ahead(api_as: Any, world: Any) -> None:
    # given a watched dependency whose page says operational while our probe fails
    stripe = ExternalDependency.objects.create(
        slug="stripe",
        name="Stripe",
        status_source="statuspage",
        status_page_url="https://status.stripe.com",
        probe_url="https://api.stripe.com/",
    )
    VendorStatus.objects.create(
        dependency=stripe,
        state=ExternalState.OPERATIONAL,
        source="statuspage",
        summary="1 watched component operational",
        indicator="none",
        components=[{"id": "a", "name": "API", "status": "operational", "watched": True}],
        probe_status=CheckStatus.FAIL,
        probe_latency_ms=5000.0,
        probe_reason="timed out",
    )
    Circuit.objects.create(
        service=world.service,
        environment=world.production,
        name="stripe-api",
        protects_external=stripe,
        state=AggregateState.OPEN,
        open_instances=2,
        total_instances=3,
    )
    # when anyone reads it
    status = api_as("viewer").get(f"{URL}/stripe").json()["status"]
    # then it says what the page says, what our probe says, and that we are ahead of them
    assert status["state"] == "operational" and status["source"] == "statuspage"
    assert status["components"][0]["name"] == "API"
    assert status["our_probe"]["state"] == "fail"
    assert status["ahead_of_vendor"]["reasons"] == ["our probes fail", "1 circuit open"]
    assert status["incidents"] == [] and status["maintenances"] == []
