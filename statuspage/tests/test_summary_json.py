"""The page as Statuspage v2 JSON, read by Signalbox's own vendor poller over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from catalog.choices import StatusSource
from catalog.models import ExternalDependency
from health import vendors
from health.choices import ExternalState, ServiceStatus
from health.models import MaintenanceWindow, VendorStatus
from health.statuspage import parse
from statuspage.choices import Indicator
from statuspage.models import PublicIncident
from statuspage.tests.conftest import INTERNAL_HOST, Published, set_health


def _summary(etag: str = "") -> Any:
    headers = {"If-None-Match": etag} if etag else {}
    return Client().get("/status/shop/api/v2/summary.json", headers=headers)


@pytest.mark.django_db
def test_the_summary_speaks_statuspages_vocabulary(published: Published) -> None:
    # given a degraded service, a published incident and a maintenance window ahead
    set_health(published.world.service, published.world.production, ServiceStatus.DEGRADED)
    told = PublicIncident.objects.create(
        page=published.page, title="Some card payments fail", message="Retrying helps.",
        impact=Indicator.MINOR,
    )  # fmt: skip
    told.entries.add(published.entry)
    starts = timezone.now() + timedelta(hours=3)
    MaintenanceWindow.objects.create(
        service=published.world.service, reason="internal words", starts_at=starts,
        ends_at=starts + timedelta(hours=1),
    )  # fmt: skip
    # when a tool reads summary.json
    response = _summary()
    # then it is Statuspage's shape and words
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert body["page"]["id"] == "shop" and body["page"]["name"] == "Acme Shop"
    assert body["page"]["url"] == "http://testserver/status/shop/"
    assert body["status"] == {"indicator": "minor", "description": "Minor Service Outage"}
    (component,) = body["components"]
    assert component["name"] == "Card API" and component["status"] == "partial_outage"
    assert {"id", "name", "status", "updated_at"} <= set(component)
    (incident,) = body["incidents"]
    assert incident["name"] == "Some card payments fail" and incident["status"] == "investigating"
    assert incident["impact"] == "minor"
    assert incident["incident_updates"][0]["body"] == "Retrying helps."
    assert [c["name"] for c in incident["components"]] == ["Card API"]
    (maintenance,) = body["scheduled_maintenances"]
    assert maintenance["status"] == "scheduled" and maintenance["name"] == "Scheduled maintenance"
    assert maintenance["scheduled_for"] == starts.isoformat()
    text = response.content.decode()
    assert "internal words" not in text and INTERNAL_HOST not in text
    assert "checkout" not in text and "payments" not in text.replace("card payments", "")
    # and our own parser reads it
    assert parse(body).indicator == "minor"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("states", "indicator", "component"),
    [
        ([ServiceStatus.HEALTHY], "none", "operational"),
        ([ServiceStatus.UNKNOWN], "minor", "degraded_performance"),
        ([ServiceStatus.DOWN], "critical", "major_outage"),
        ([ServiceStatus.DOWN, ServiceStatus.HEALTHY], "major", "major_outage"),
    ],
)
def test_the_indicator_follows_the_worst_component(
    published: Published, states: list[str], indicator: str, component: str
) -> None:
    from catalog.models import Service
    from statuspage.models import StatusPageService

    world = published.world
    set_health(world.service, world.production, states[0])
    for n, state in enumerate(states[1:]):
        other = Service.objects.create(slug=f"extra-{n}", name=f"Extra {n}", team=world.team)
        StatusPageService.objects.create(
            page=published.page, service=other, display_name=other.name
        )
        set_health(other, world.production, state)
    body = _summary().json()
    assert body["status"]["indicator"] == indicator
    assert body["components"][0]["status"] == component


@pytest.mark.django_db
def test_maintenance_in_progress_marks_the_component(published: Published) -> None:
    MaintenanceWindow.objects.create(
        service=published.world.service, starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(minutes=30),
    )  # fmt: skip
    body = _summary().json()
    assert body["components"][0]["status"] == "under_maintenance"
    assert body["status"] == {"indicator": "none", "description": "Service Under Maintenance"}
    assert body["scheduled_maintenances"][0]["status"] == "in_progress"


@pytest.mark.django_db
def test_status_json_and_etag(published: Published) -> None:
    first = _summary()
    etag = first["ETag"]
    assert _summary(etag).status_code == 304
    set_health(published.world.service, published.world.production, ServiceStatus.DOWN)
    changed = _summary(etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    status = Client().get("/status/shop/api/v2/status.json").json()
    assert set(status) == {"page", "status"} and status["status"]["indicator"] == "critical"


@pytest.mark.django_db(transaction=True)
def test_another_signalbox_watches_this_page_as_a_dependency(
    published: Published, live_server: Any
) -> None:
    # given this page served over HTTP, watched by the vendor poller by component name
    dependency = ExternalDependency.objects.create(
        slug="acme-shop", name="Acme Shop", status_source=StatusSource.STATUSPAGE,
        status_page_url=f"{live_server.url}/status/shop/", status_components=["Card API"],
    )  # fmt: skip
    # when it polls
    first = vendors.poll_now(dependency)
    # then it sees the component operational
    assert first.polled and first.state == ExternalState.OPERATIONAL
    status = VendorStatus.objects.get(dependency=dependency)
    assert status.indicator == "none" and status.etag
    # and an unchanged page is a 304 to its conditional GET
    VendorStatus.objects.filter(pk=status.pk).update(next_due_at=timezone.now())
    assert vendors.poll_now(dependency).not_modified
    # when the service goes down here, the poller there sees a major outage
    set_health(published.world.service, published.world.production, ServiceStatus.DOWN)
    after = vendors.poll_now(dependency)
    assert after.changed and after.state == ExternalState.MAJOR_OUTAGE
    assert VendorStatus.objects.get(dependency=dependency).summary == "Card API: major outage"
