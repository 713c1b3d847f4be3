"""No address a user sets through the API escapes the outbound guard. Every request field of
the OpenAPI document that holds a URL or a host is classified: fetched by Signalbox (refused
at save time when it is a forbidden address, and guarded at call time: the per-path tests in
each app) or a link people follow and Signalbox never fetches. A new field fails this test
until it is classified, so none can slip past the guard unnoticed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from catalog.models import Instance
from deployments.tests.conftest import make_route

URLISH = re.compile(r"(^|_)(url|host|endpoint|address|hook|uri)($|_)")
# (request component, property): Signalbox connects to it.
FETCHED = {
    ("ChannelRequest", "url"),
    ("ChannelRequest", "secret"),  # Slack: its webhook URL; Apprise: its Apprise URL
    ("InstanceRequest", "host"),
    ("InstanceAddressRequest", "host"),
    ("RegistrationRequest", "host"),
    ("ScrapeTargetRequest", "url"),
    ("PrometheusMetricRequest", "url"),
    ("WebhookMetricRequest", "url"),
    ("GroupRequest", "driver_config"),  # a scaling group's control_url or endpoint_url
    ("ExternalDependencyRequest", "status_page_url"),  # polled (statuspage source)
    ("ExternalDependencyRequest", "probe_url"),  # probed (probe source)
}
# Links shown to people, or names that identify an instance: never requested by Signalbox.
LINKS_ONLY = {
    ("ReportedMetricRequest", "host"),  # which instance a reported metric is about
    ("ServiceRequest", "repository_url"),
    ("ServiceRequest", "runbook_url"),
}
METADATA = "169.254.169.254"


def request_address_fields() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = set()
    for name, component in schema["components"]["schemas"].items():
        if not name.endswith("Request"):
            continue
        base = name.removeprefix("Patched")
        for prop, spec in (component.get("properties") or {}).items():
            if URLISH.search(prop) or spec.get("format") == "uri":
                found.add((base, prop))
    return found


def test_every_address_field_of_the_api_is_classified() -> None:
    found = request_address_fields()
    unclassified = found - FETCHED - LINKS_ONLY
    assert unclassified == set(), (
        "classify each new URL or host field: FETCHED (guard it: controlplane.outbound) "
        "or LINKS_ONLY (never requested)"
    )
    # (a Slack secret and a driver's config are URLs by content, not by name: listed above)
    by_hand = {("ChannelRequest", "secret"), ("GroupRequest", "driver_config")}
    assert (FETCHED | LINKS_ONLY) - by_hand <= found


@pytest.fixture
def routed(world: Any, tmp_path: Any) -> Any:
    for port, version in ((9001, "1.0"), (9003, "2.0")):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version=version,
        )
    return make_route(world, {"socket": str(tmp_path / "haproxy.sock")})


def rollout_with(provider: str, url: str) -> dict[str, Any]:
    metric: dict[str, Any] = {"provider": provider, "url": url}
    if provider == "prometheus":
        metric.update(query="up", condition="> 0")
    return {
        "service": "checkout",
        "environment": "production",
        "version": "2.0",
        "analysis": [metric],
    }


SAVES = {
    ("ChannelRequest", "url"): (
        "/api/v1/alerts/channels",
        {
            "team": "payments",
            "name": "h",
            "kind": "webhook",
            "secret": "0123456789abcdef",
            "url": f"http://{METADATA}/",
        },
        "url",
    ),
    ("ChannelRequest", "secret"): (
        "/api/v1/alerts/channels",
        {"team": "payments", "name": "s", "kind": "slack", "secret": f"http://{METADATA}/x"},
        "secret",
    ),
    ("InstanceRequest", "host"): (
        "/api/v1/instances",
        {"service": "checkout", "environment": "production", "host": METADATA, "port": 80},
        "host",
    ),
    ("InstanceAddressRequest", "host"): (
        "/api/v1/instances/deregister",
        {"service": "checkout", "environment": "production", "host": METADATA, "port": 80},
        "host",
    ),
    ("RegistrationRequest", "host"): (
        "/api/v1/instances/register",
        {"service": "checkout", "environment": "production", "host": METADATA, "port": 80},
        "host",
    ),
    ("ScrapeTargetRequest", "url"): (
        "/api/v1/circuits/scrape-targets",
        {
            "kind": "prometheus",
            "url": f"http://{METADATA}/metrics",
            "service": "checkout",
            "environment": "production",
        },
        "url",
    ),
    ("PrometheusMetricRequest", "url"): (
        "/api/v1/rollouts",
        rollout_with("prometheus", f"http://{METADATA}"),
        "analysis",
    ),
    ("WebhookMetricRequest", "url"): (
        "/api/v1/rollouts",
        rollout_with("webhook", f"http://{METADATA}/hook"),
        "analysis",
    ),
    ("GroupRequest", "driver_config"): (
        "/api/v1/scaling/groups",
        {
            "service": "checkout",
            "environment": "production",
            "driver": "process",
            "driver_config": {"control_url": f"http://{METADATA}:7900"},
            "metrics": [{"source": "cpu", "target": 60}],
        },
        "driver_config.control_url",
    ),
    ("ExternalDependencyRequest", "status_page_url"): (
        "/api/v1/external-dependencies",
        {
            "slug": "vendor",
            "name": "Vendor",
            "status_source": "statuspage",
            "status_page_url": f"http://{METADATA}/",
        },
        "status_page_url",
    ),
    ("ExternalDependencyRequest", "probe_url"): (
        "/api/v1/external-dependencies",
        {
            "slug": "vendor",
            "name": "Vendor",
            "status_source": "probe",
            "probe_url": f"http://{METADATA}/ping",
        },
        "probe_url",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("field", sorted(FETCHED))
def test_every_fetched_address_refuses_the_metadata_service_when_saved(
    api_as: Any, routed: Any, field: tuple[str, str]
) -> None:
    path, body, named = SAVES[field]
    persona = "admin" if field[0] == "ExternalDependencyRequest" else "owner"  # admins' catalog
    answer = api_as(persona).post(path, body, format="json")
    assert answer.status_code == 400, answer.json()
    reasons = answer.json()["error"]["fields"][named]
    assert any("refused" in reason for reason in reasons), reasons
