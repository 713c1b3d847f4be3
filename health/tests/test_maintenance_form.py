"""Maintenance windows from the service page: create (one-off, recurring), end early, what a
window covers; the API's serializer and permission rule, one audited event per change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from catalog.models import Instance
from controlplane.models import Event
from health.choices import MaintenanceEvent
from health.maintenance import in_maintenance
from health.models import MaintenanceWindow

pytestmark = pytest.mark.django_db
CREATE = "/health/services/checkout/maintenance/"
PAGE = "/health/services/checkout/?env=production"


def client_of(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def one_off(**changes: str) -> dict[str, str]:
    now = timezone.now()
    return {
        "kind": "one-off",
        "environment": "production",
        "reason": "database upgrade",
        "starts_at": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "cron": "",
        "duration_minutes": "",
        "timezone": "UTC",
        **changes,
    }


def maintenance_events() -> list[str]:
    return list(
        Event.objects.filter(action__startswith="maintenance.")
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_an_owner_creates_a_window_and_sees_what_it_covers(world: Any) -> None:
    # given two live instances of checkout in production and one in staging
    for host, env in (("10.0.0.1", world.production), ("10.0.0.2", world.production)):
        Instance.objects.create(service=world.service, environment=env, host=host, port=80)
    Instance.objects.create(
        service=world.service, environment=world.staging, host="10.0.1.1", port=80
    )
    client = client_of(world.owner)
    # when the owner creates a window for production, starting 5 minutes ago
    response = client.post(CREATE, one_off())
    # then it is saved as one audited event and checkout is in maintenance in production only
    assert response.status_code == 302
    assert response["Location"] == "/health/services/checkout/?env=production#maintenance"
    window = MaintenanceWindow.objects.get(service=world.service)
    assert window.created_by == world.owner and window.reason == "database upgrade"
    assert in_maintenance(world.service.pk, world.production.pk)
    assert not in_maintenance(world.service.pk, world.staging.pk)
    assert maintenance_events() == [MaintenanceEvent.CREATED]
    # and the page lists it as active, covering production's two instances
    html = client.get(PAGE).content.decode()
    row = html.split(f'id="maintenance-{window.pk}"', 1)[1].split("</li>", 1)[0]
    assert "active now" in row and "covers production (2 live instances)" in row
    assert "End now" in row


def test_the_start_and_end_are_read_in_the_window_time_zone(world: Any) -> None:
    client_of(world.owner).post(
        CREATE,
        one_off(starts_at="2031-03-01T10:00", ends_at="2031-03-01T12:00", timezone="Europe/Berlin"),
    )
    window = MaintenanceWindow.objects.get(service=world.service)
    assert window.starts_at is not None
    assert window.starts_at.isoformat() == "2031-03-01T09:00:00+00:00"


def test_a_recurring_window_covers_every_environment(world: Any) -> None:
    response = client_of(world.owner).post(
        CREATE,
        one_off(kind="recurring", environment="", cron="0 3 * * 6", duration_minutes="90"),
    )
    assert response.status_code == 302
    window = MaintenanceWindow.objects.get(service=world.service)
    assert (window.cron, window.duration_minutes, window.environment) == ("0 3 * * 6", 90, None)
    assert window.starts_at is None
    html = client_of(world.owner).get(PAGE).content.decode()
    assert "covers staging, production" in html and "next 20" in html


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"ends_at": "2020-01-01T00:00"}, "ends_at", "must be after starts_at"),
        ({"kind": "recurring", "cron": "every saturday"}, "cron", "must be a 5-field cron"),
        ({"kind": "recurring", "cron": "0 3 * * 6"}, "duration_minutes", "needs its length"),
        ({"timezone": "Mars/Olympus"}, "timezone", "must be an IANA time zone name"),
        ({"starts_at": ""}, "starts_at", "give starts_at and ends_at"),
    ],
)
def test_a_bad_value_is_named_next_to_its_field_and_nothing_is_saved(
    world: Any, changes: dict[str, str], field: str, reason: str
) -> None:
    response = client_of(world.owner).post(CREATE, one_off(**changes))
    assert response.status_code == 400
    html = response.content.decode()
    error = html.split(f'id="mw-{field}-error"', 1)[1].split("</small>", 1)[0]
    assert reason in error
    assert "Nothing was saved" in html
    assert not MaintenanceWindow.objects.exists()
    assert maintenance_events() == []


def test_ending_early_ends_an_active_window_now_and_deletes_a_future_one(world: Any) -> None:
    now = timezone.now()
    active = MaintenanceWindow.objects.create(
        service=world.service, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    future = MaintenanceWindow.objects.create(
        service=world.service, starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=2)
    )
    client = client_of(world.owner)
    assert client.post(f"/health/maintenance/{active.pk}/end/").status_code == 302
    assert client.post(f"/health/maintenance/{future.pk}/end/").status_code == 302
    active.refresh_from_db()
    assert active.ends_at is not None and now <= active.ends_at <= timezone.now()
    assert not in_maintenance(world.service.pk, world.production.pk)
    assert not MaintenanceWindow.objects.filter(pk=future.pk).exists()
    assert maintenance_events() == [MaintenanceEvent.UPDATED, MaintenanceEvent.DELETED]


@pytest.mark.parametrize("persona", ["viewer", "deployer", "outsider"])
def test_others_see_no_controls_and_are_refused(world: Any, persona: str) -> None:
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        service=world.service, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    client = client_of(getattr(world, persona))
    html = client.get(PAGE).content.decode()
    assert "New maintenance window" not in html and "End now" not in html
    assert client.post(CREATE, one_off()).status_code == 403
    assert client.post(f"/health/maintenance/{window.pk}/end/").status_code == 403
    assert MaintenanceWindow.objects.get().ends_at == window.ends_at
    assert maintenance_events() == []
