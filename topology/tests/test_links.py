"""Links out of Signalbox: the map and blast radius from a service page, the service's log
link (filled for the page's service, environment, instance and time range) on the service
page, instance rows, incidents and rollouts, and a trace id to the service's trace UI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from alerts.choices import RuleKind, Severity
from alerts.models import Incident, Rule
from catalog.models import Instance
from deployments.models import Rollout
from health.models import InstanceCheck

pytestmark = pytest.mark.django_db
LOGS = (
    "https://logs.example.com/q?svc={service}&env={environment}&i={instance}&from={start}&to={end}"
)
TRACES = "https://jaeger.example.com/trace/{trace_id}?env={environment}"


@pytest.fixture
def linked(world: Any) -> Any:
    world.service.log_link_template = LOGS
    world.service.trace_link_template = TRACES
    world.service.save()
    return world


def signed_in(world: Any) -> Client:
    client = Client()
    client.force_login(world.viewer)
    return client


def log_query(html: str, element_id: str) -> dict[str, list[str]]:
    """The query of the log link in the element with this id."""
    start = html.index(f'id="{element_id}"') if f'id="{element_id}"' in html else -1
    assert start >= 0, f"no #{element_id}"
    tag = html[html.rindex("<a", 0, start) : html.index(">", start)]
    url = tag.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert url.startswith("https://logs.example.com/q?")
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_the_service_page_links_the_map_the_blast_radius_logs_and_traces(linked: Any) -> None:
    html = signed_in(linked).get("/catalog/services/checkout/").content.decode()

    assert 'href="/topology/?environment=production" id="service-map-link"' in html
    assert 'href="/topology/blast/service/checkout/?environment=production"' in html
    query = log_query(html, "service-logs")
    assert query["svc"] == ["checkout"] and query["env"] == ["production"]
    assert query["i"] == [""]
    span = _parse(query["to"][0]) - _parse(query["from"][0])
    assert span == timedelta(hours=1)
    assert 'action="/topology/trace/checkout/"' in html


def test_a_service_without_templates_shows_no_log_or_trace_section(world: Any) -> None:
    html = signed_in(world).get("/catalog/services/checkout/").content.decode()

    assert 'id="service-logs"' not in html and 'id="service-trace-form"' not in html
    assert 'id="service-blast-link"' in html


def test_a_trace_id_opens_the_service_trace_ui(linked: Any) -> None:
    client = signed_in(linked)
    trace_id = "4BF92F3577B34DA6A3CE929D0E0E4736"

    response = client.get(
        "/topology/trace/checkout/", {"trace_id": trace_id, "environment": "production"}
    )

    assert response.status_code == 302
    assert response["Location"] == (
        "https://jaeger.example.com/trace/4bf92f3577b34da6a3ce929d0e0e4736?env=production"
    )
    bad = client.get("/topology/trace/checkout/", {"trace_id": "not-a-trace"})
    assert bad.status_code == 400 and b"trace_id" in bad.content
    zeros = client.get("/topology/trace/checkout/", {"trace_id": "0" * 32})
    assert zeros.status_code == 400
    assert client.get("/topology/trace/indexer/", {"trace_id": trace_id}).status_code == 404
    assert Client().get("/topology/trace/checkout/").status_code == 302  # to sign in


def test_instance_rows_link_that_instance_logs(linked: Any) -> None:
    instance = Instance.objects.create(
        service=linked.service, environment=linked.production, host="10.0.0.7", port=8080
    )
    InstanceCheck.objects.get_or_create(instance=instance)

    html = signed_in(linked).get("/catalog/services/checkout/").content.decode()

    assert 'aria-label="Logs of 10.0.0.7:8080, the last hour"' in html
    assert "i=10.0.0.7%3A8080" in html


def test_an_incident_links_the_logs_of_its_time_range(linked: Any) -> None:
    started = timezone.now() - timedelta(hours=3)
    rule = Rule.objects.create(
        team=linked.team,
        name="down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )
    incident = Incident.objects.create(
        rule=rule,
        team=linked.team,
        service=linked.service,
        environment=linked.production,
        subject_type="service",
        subject_id=str(linked.service.pk),
        subject_label="checkout",
        dedup_key="k",
        severity=Severity.PAGE,
        state="resolved",
        title="checkout is down",
        started_at=started,
        fired_at=started,
        resolved_at=started + timedelta(minutes=30),
    )

    html = signed_in(linked).get(f"/alerts/incidents/{incident.pk}/").content.decode()

    query = log_query(html, "incident-logs")
    assert query["env"] == ["production"]
    assert _parse(query["from"][0]) == _whole_seconds(started - timedelta(minutes=15))
    assert _parse(query["to"][0]) == _whole_seconds(started + timedelta(minutes=45))


def test_a_rollout_links_the_logs_while_it_ran(linked: Any) -> None:
    started = timezone.now() - timedelta(minutes=20)
    rollout = Rollout.objects.create(
        team=linked.team,
        service=linked.service,
        environment=linked.production,
        strategy="canary",
        steps=[{"set_weight": 100}],
        to_version="2.0",
        started_at=started,
    )

    html = signed_in(linked).get(f"/deployments/rollouts/{rollout.pk}/").content.decode()

    query = log_query(html, "rollout-logs")
    assert query["svc"] == ["checkout"]
    assert _parse(query["from"][0]) == _whole_seconds(started - timedelta(minutes=5))


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _whole_seconds(moment: Any) -> Any:
    return moment.replace(microsecond=0)
