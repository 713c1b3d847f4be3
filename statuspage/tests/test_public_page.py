"""The public page seen logged out: what it shows, and that it shows nothing internal."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.exceptions import RedisError

from alerts.choices import IncidentState, RuleKind, Severity
from alerts.models import Incident, Rule
from catalog.models import Service
from health.choices import ServiceStatus
from health.models import MaintenanceWindow
from statuspage.choices import IncidentStatus, Indicator
from statuspage.models import PublicIncident, StatusPageService
from statuspage.tests.conftest import INTERNAL_HOST, INTERNAL_PORT, Published, set_health

pytestmark = pytest.mark.django_db


def _internal_incident(world: Any) -> Incident:
    rule = Rule.objects.create(
        team=world.team, name="checkout down", kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE, params={"states": ["down"]},
    )  # fmt: skip
    return Incident.objects.create(
        rule=rule, team=world.team, service=world.service, environment=world.production,
        subject_type="catalog.service", subject_id=str(world.service.pk),
        subject_label="checkout in production", dedup_key="internal-dedup-key",
        severity=Severity.PAGE, state=IncidentState.FIRING,
        title="checkout down: db-primary.internal refused connections",
        reason="psycopg.OperationalError: connection to 10.2.3.4 port 5432 refused; runbook x",
        acknowledged_by="owner",
    )  # fmt: skip


def _get(path: str) -> Any:
    return Client().get(path)


def test_a_logged_out_visitor_sees_the_state_bars_and_published_incident(
    published: Published,
) -> None:
    # given an internal incident told to the public in the operator's own words
    internal = _internal_incident(published.world)
    told = PublicIncident.objects.create(
        page=published.page, title="Card payments are failing", impact=Indicator.MAJOR,
        message="We are looking into failed card payments.", incident=internal,
    )  # fmt: skip
    told.entries.add(published.entry)
    # when someone with no session opens the page
    response = _get("/status/shop/")
    # then it shows the display name, its state, the incident's public text and 90 bars
    assert response.status_code == 200
    html = response.content.decode()
    assert "Card API" in html and "Operational" in html
    assert (
        "Card payments are failing" in html and "We are looking into failed card payments." in html
    )
    assert "Partial System Outage" in html  # the incident's impact lifts the indicator
    assert len(re.findall(r'<li class="sp-bar"', html)) == 90
    yesterday = (timezone.now() - timedelta(days=1)).date()
    label = f"{yesterday:%b} {yesterday.day}, {yesterday.year}: 99.5% uptime"
    assert f'aria-label="{label}"' in html and 'tabindex="0"' in html
    assert response["Cache-Control"] == "public, max-age=60"


def test_it_leaks_nothing_internal(published: Published) -> None:
    world = published.world
    internal = _internal_incident(world)
    PublicIncident.objects.create(
        page=published.page, title="Slow card processing", incident=internal
    )
    MaintenanceWindow.objects.create(
        service=world.service, reason="patch db-primary.internal",
        starts_at=timezone.now() + timedelta(hours=2), ends_at=timezone.now() + timedelta(hours=3),
    )  # fmt: skip
    response = _get("/status/shop/")
    html = response.content.decode()
    assert "Scheduled maintenance" in html
    for secret in [
        INTERNAL_HOST,
        str(INTERNAL_PORT),
        internal.title,
        "db-primary",
        "10.2.3.4",
        "runbook",
        "internal-dedup-key",
        world.team.name,
        world.team.slug,
        world.service.slug,
        "owner",
        "csrfmiddlewaretoken",
    ]:
        assert secret not in html, secret
    assert "<form" not in html
    assert "csrftoken" not in response.cookies and "sessionid" not in response.cookies


def test_team_names_and_maintenance_reasons_show_only_when_chosen(published: Published) -> None:
    page = published.page
    MaintenanceWindow.objects.create(
        service=published.world.service, reason="Upgrading the card vault",
        starts_at=timezone.now() - timedelta(minutes=5),
        ends_at=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    page.show_team_names = True
    page.show_maintenance_reasons = True
    page.save()
    html = _get("/status/shop/").content.decode()
    assert 'class="sp-team">Payments<' in html
    assert "Upgrading the card vault" in html and "In progress" in html
    assert "Under maintenance" in html


def test_unpublished_and_unknown_pages_are_404(published: Published) -> None:
    published.page.published = False
    published.page.save()
    for path in ["/status/shop/", "/status/shop/api/v2/summary.json", "/status/nope/"]:
        assert _get(path).status_code == 404, path


def test_a_down_service_shows_as_major_outage(published: Published) -> None:
    set_health(published.world.service, published.world.production, ServiceStatus.DOWN)
    html = _get("/status/shop/").content.decode()
    assert "Major outage" in html and "Major Service Outage" in html


def test_resolved_incidents_are_not_shown(published: Published) -> None:
    PublicIncident.objects.create(
        page=published.page, title="Old trouble", status=IncidentStatus.RESOLVED
    )
    assert "Old trouble" not in _get("/status/shop/").content.decode()


def _queries(path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert _get(path).status_code == 200
    return len(captured.captured_queries)


def _fill(published: Published, n: int) -> None:
    world = published.world
    services = Service.objects.bulk_create(
        [Service(slug=f"svc-{i}", name=f"Svc {i}", team=world.team) for i in range(n)]
    )
    StatusPageService.objects.bulk_create(
        [StatusPageService(page=published.page, service=s, display_name=s.name, position=i + 1)
         for i, s in enumerate(services)]
    )  # fmt: skip
    for s in services[:3]:
        set_health(s, world.production, ServiceStatus.DEGRADED)
        MaintenanceWindow.objects.create(
            service=s, starts_at=timezone.now(), ends_at=timezone.now() + timedelta(hours=1)
        )


@pytest.mark.parametrize("path", ["/status/shop/", "/status/shop/api/v2/summary.json"])
def test_queries_stay_flat_from_10_to_1000_services(published: Published, path: str) -> None:
    published.page.show_team_names = True
    published.page.save()
    _fill(published, 9)
    few = _queries(path)
    _fill_more = Service.objects.count()
    assert _fill_more >= 10
    # when the page grows to 1,000 services
    world = published.world
    services = Service.objects.bulk_create(
        [Service(slug=f"more-{i}", name=f"More {i}", team=world.team) for i in range(990)]
    )
    StatusPageService.objects.bulk_create(
        [StatusPageService(page=published.page, service=s, display_name=s.name, position=100 + i)
         for i, s in enumerate(services)]
    )  # fmt: skip
    assert published.page.entries.count() == 1000
    # then it runs as many queries as with 10
    assert _queries(path) == few


def test_the_page_still_shows_its_bars_when_the_cache_is_away(
    published: Published, settings: Any
) -> None:
    # given a cache (Redis) nothing listens for
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    with pytest.raises(RedisError):
        cache.get("anything")
    # then the page sums the past days itself
    html = _get("/status/shop/").content.decode()
    assert "99.5% uptime" in html


def test_an_admin_edits_pages_badges_and_incidents_in_the_admin(published: Published) -> None:
    client = Client()
    client.force_login(published.world.admin)
    for path in [
        "/admin/statuspage/statuspage/",
        f"/admin/statuspage/statuspage/{published.page.pk}/change/",
        "/admin/statuspage/statuspage/add/",
        "/admin/statuspage/publicincident/add/",
        "/admin/statuspage/badge/add/",
    ]:
        assert client.get(path).status_code == 200, path


def test_groups_head_their_services(published: Published) -> None:
    published.entry.group = "Payments platform"
    published.entry.save()
    html = _get("/status/shop/").content.decode()
    assert '<h3 class="sp-group">Payments platform</h3>' in html
    assert '<h4 class="sp-name">Card API' in html
