"""Freeze windows from the dashboard: everyone sees what is frozen and what a window covers;
platform admins create, end early and delete, through the API's serializers and one
audited event each; everyone else gets no controls and a 403."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from catalog.models import Instance
from controlplane.models import Event
from deployments.choices import FreezeWindowEvent, RecurringFreezeWindowEvent
from deployments.freeze import freeze_of
from deployments.models import FreezeWindow, RecurringFreezeWindow

pytestmark = pytest.mark.django_db
PAGE = "/deployments/freezes/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_of(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def freeze_events() -> list[str]:
    return list(
        Event.objects.filter(action__contains="freeze_window.")
        .order_by("id")
        .values_list("action", flat=True)
    )


def one_off(**changes: str) -> dict[str, str]:
    now = timezone.now()
    return {
        "environment": "production",
        "starts_at": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "reason": "year-end close",
        **changes,
    }


def test_an_admin_freezes_production_once_and_everyone_sees_what_it_covers(world: Any) -> None:
    # given checkout and indexer live in production
    for service, host in ((world.service, "10.0.0.1"), (world.other_service, "10.0.0.2")):
        Instance.objects.create(service=service, environment=world.production, host=host, port=80)
    # when an admin freezes production from 5 minutes ago for two hours
    response = client_of(world.admin).post("/deployments/freezes/one-off/new", one_off())
    # then production is frozen, as one audited event by the admin
    assert response.status_code == 302
    window = FreezeWindow.objects.get()
    assert window.created_by == world.admin
    assert freeze_of(world.production) is not None and freeze_of(world.staging) is None
    assert freeze_events() == [FreezeWindowEvent.CREATED]
    assert Event.objects.get().actor_user == world.admin
    # and a viewer sees it, what it covers, and no controls
    html = client_of(world.viewer).get(PAGE).content.decode()
    now_row = html.split('id="frozen-production"', 1)[1].split("</li>", 1)[0]
    assert "frozen until" in now_row and "year-end close" in now_row
    assert "covers 2 services" in now_row
    assert "open for rollouts" in html.split('id="frozen-staging"', 1)[1].split("</li>", 1)[0]
    assert "End now" not in html and "Freeze an environment once" not in html


def test_an_admin_ends_a_freeze_early_and_deletes_a_coming_one(world: Any) -> None:
    now = timezone.now()
    active = FreezeWindow.objects.create(
        environment=world.production,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        reason="incident",
    )
    coming = FreezeWindow.objects.create(
        environment=world.production,
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=2),
        reason="launch",
    )
    client = client_of(world.admin)
    assert "End now" in client.get(PAGE).content.decode()
    assert client.post(f"/deployments/freezes/one-off/{active.pk}/end").status_code == 302
    assert client.post(f"/deployments/freezes/one-off/{coming.pk}/end").status_code == 302
    active.refresh_from_db()
    assert now <= active.ends_at <= timezone.now()
    assert freeze_of(world.production) is None
    assert not FreezeWindow.objects.filter(pk=coming.pk).exists()
    assert freeze_events() == [FreezeWindowEvent.UPDATED, FreezeWindowEvent.DELETED]


def test_an_admin_creates_and_deletes_a_weekly_freeze(world: Any) -> None:
    client = client_of(world.admin)
    response = client.post(
        "/deployments/freezes/recurring/new",
        {
            "environment": "production",
            "name": "weekend",
            "days": ["fri"],
            "start_time": "16:00",
            "duration_minutes": "3840",
            "timezone": "Europe/Berlin",
            "reason": "nobody on call",
        },
    )
    assert response.status_code == 302
    window = RecurringFreezeWindow.objects.get()
    assert (window.days, window.timezone, window.duration_minutes) == (
        ["fri"],
        "Europe/Berlin",
        3840,
    )
    assert "weekend" in client.get(PAGE).content.decode()
    assert client.post(f"/deployments/freezes/recurring/{window.pk}/end").status_code == 302
    assert not RecurringFreezeWindow.objects.exists()
    assert freeze_events() == [
        RecurringFreezeWindowEvent.CREATED,
        RecurringFreezeWindowEvent.DELETED,
    ]


@pytest.mark.parametrize(
    ("path", "data", "field", "reason"),
    [
        ("one-off", one_off(ends_at="2020-01-01T00:00"), "fz-ends_at", "must be after starts_at"),
        ("one-off", one_off(environment="moon"), "fz-environment", "no environment"),
        (
            "recurring",
            {"environment": "production", "name": "night", "start_time": "22:00",
             "duration_minutes": "480", "timezone": "UTC", "reason": "sleep"},
            "rf-days",
            "name at least one day of the week",
        ),
        (
            "recurring",
            {"environment": "production", "name": "night", "days": ["mon"], "start_time": "22:00",
             "duration_minutes": "480", "timezone": "Mars/Olympus", "reason": "sleep"},
            "rf-timezone",
            "Mars/Olympus",
        ),
    ],
)  # fmt: skip
def test_a_bad_value_is_named_next_to_its_field_and_nothing_is_saved(
    world: Any, path: str, data: dict[str, Any], field: str, reason: str
) -> None:
    response = client_of(world.admin).post(f"/deployments/freezes/{path}/new", data)
    assert response.status_code == 400
    html = response.content.decode()
    error = html.split(f'id="{field}-error"', 1)[1].split("</small>", 1)[0]
    assert reason in error.replace("&#x27;", "'")
    assert not FreezeWindow.objects.exists() and not RecurringFreezeWindow.objects.exists()
    assert freeze_events() == []


def test_a_second_weekly_freeze_of_the_same_name_is_refused_by_name(world: Any) -> None:
    data = {
        "environment": "production", "name": "night", "days": ["mon"], "start_time": "22:00",
        "duration_minutes": "480", "timezone": "UTC", "reason": "sleep",
    }  # fmt: skip
    client = client_of(world.admin)
    assert client.post("/deployments/freezes/recurring/new", data).status_code == 302
    again = client.post("/deployments/freezes/recurring/new", data)
    assert again.status_code == 400
    assert "already has a window named" in again.content.decode()
    assert RecurringFreezeWindow.objects.count() == 1


@pytest.mark.parametrize("persona", ["owner", "deployer", "viewer"])
def test_only_admins_change_freezes(world: Any, persona: str) -> None:
    now = timezone.now()
    window = FreezeWindow.objects.create(
        environment=world.production,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        reason="incident",
    )
    client = client_of(getattr(world, persona))
    assert client.post("/deployments/freezes/one-off/new", one_off()).status_code == 403
    assert client.post(f"/deployments/freezes/one-off/{window.pk}/end").status_code == 403
    assert FreezeWindow.objects.get().ends_at == window.ends_at
    assert freeze_events() == []
