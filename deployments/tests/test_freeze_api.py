"""Recurring freeze windows: 423 during one, 201 outside, owners' overrides recorded, the
freeze-window endpoints' validation, and the board's "frozen until"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from catalog.models import Instance
from controlplane.models import Event
from deployments.choices import WEEKDAYS
from deployments.freeze import freeze_of
from deployments.models import FreezeWindow, RecurringFreezeWindow, Rollout
from deployments.tests.conftest import make_route

pytestmark = pytest.mark.django_db

# No clock changes in Kolkata: a window placed around "now" covers it whatever the date.
KOLKATA = "Asia/Kolkata"


@pytest.fixture
def routed(world: Any, tmp_path: Any) -> Any:
    for port, version in ((9001, "1.0"), (9002, "2.0")):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version=version,
        )
    return make_route(world, {"socket": str(tmp_path / "haproxy.sock")})


def body(**overrides: Any) -> dict[str, Any]:
    return {"service": "checkout", "environment": "production", "version": "2.0", **overrides}


def nightly(world: Any, starts_in: timedelta, minutes: int, name: str = "night") -> Any:
    """Every day, starting `starts_in` from now (local Kolkata time), for `minutes`."""
    local = (timezone.now() + starts_in).astimezone(ZoneInfo(KOLKATA))
    return RecurringFreezeWindow.objects.create(
        environment=world.production,
        name=name,
        days=WEEKDAYS,
        start_time=local.time().replace(second=0, microsecond=0),
        duration_minutes=minutes,
        timezone=KOLKATA,
        reason="nightly batch jobs",
    )


def test_a_recurring_window_refuses_new_rollouts_with_423_naming_it(
    world: Any, routed: Any, api_as: Any
) -> None:
    # given production in the middle of tonight's window
    window = nightly(world, timedelta(hours=-1), 120)
    occurrence = window.covering(timezone.now())
    assert occurrence is not None
    ends = occurrence[1]
    # when a deployer starts a rollout, with or without an override reason
    plain = api_as("deployer").post("/api/v1/rollouts", body(), format="json")
    overridden = api_as("deployer").post(
        "/api/v1/rollouts", body(freeze_override_reason="hotfix"), format="json"
    )
    # then both are refused, naming the window and when it ends in UTC and local time
    assert plain.status_code == 423, plain.json()
    error = plain.json()["error"]
    assert error["code"] == "frozen"
    message = error["message"]
    assert "recurring freeze window 'night'" in message
    assert "nightly batch jobs" in message
    assert ends.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") in message
    assert (
        ends.astimezone(ZoneInfo(KOLKATA)).strftime("%Y-%m-%d %H:%M IST, Asia/Kolkata") in message
    )
    assert "freeze_override_reason" in message
    assert overridden.status_code == 423
    assert "Only an owner" in overridden.json()["error"]["message"]
    assert not Rollout.objects.exists()


def test_an_owner_overrides_a_recurring_window_and_it_is_recorded(
    world: Any, routed: Any, api_as: Any
) -> None:
    nightly(world, timedelta(hours=-1), 120)
    response = api_as("owner").post(
        "/api/v1/rollouts", body(freeze_override_reason="payments outage fix"), format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["freeze_override_reason"] == "payments outage fix"
    rollout = Rollout.objects.get()
    assert rollout.freeze_override_reason == "payments outage fix"
    event = Event.objects.get(action="rollout.created")
    assert event.payload["freeze_override_reason"] == "payments outage fix"
    assert "recurring freeze window 'night'" in event.payload["overridden_freeze"]


def test_outside_the_window_rollouts_start(world: Any, routed: Any, api_as: Any) -> None:
    # given a window that starts in two hours (and yesterday's ended 21 hours ago)
    nightly(world, timedelta(hours=2), 60)
    response = api_as("deployer").post("/api/v1/rollouts", body(), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["freeze_override_reason"] == ""


def test_staging_is_not_frozen_by_productions_window(world: Any, api_as: Any) -> None:
    nightly(world, timedelta(hours=-1), 120)
    assert freeze_of(world.production) is not None
    assert freeze_of(world.staging) is None


def test_the_latest_ending_window_is_the_one_named(world: Any) -> None:
    # given a one-off window ending in 30 minutes and a recurring one ending in an hour
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=world.production,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(minutes=30),
        reason="release train",
    )
    nightly(world, timedelta(hours=-1), 120)
    freeze = freeze_of(world.production)
    assert freeze is not None
    assert freeze.kind == "recurring"
    assert freeze.ends_at > now + timedelta(minutes=50)


def admin_posts(api_as: Any, **overrides: Any) -> Any:
    data = {
        "environment": "production",
        "name": "weekend",
        "days": ["fri"],
        "start_time": "16:00",
        "duration_minutes": 64 * 60,
        "timezone": "Europe/Berlin",
        "reason": "nobody on call",
        **overrides,
    }
    return api_as("admin").post("/api/v1/recurring-freeze-windows", data, format="json")


def test_an_admin_creates_a_recurring_window_through_the_api(world: Any, api_as: Any) -> None:
    response = admin_posts(api_as, days=["Friday"])
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["days"] == ["fri"]
    assert data["start_time"] == "16:00"
    assert data["schedule"] == "every fri 16:00 for 64h, Europe/Berlin"
    assert data["created_by"] == world.admin.username
    assert data["next_starts_at"].endswith("Z")
    window = RecurringFreezeWindow.objects.get()
    assert window.created_by == world.admin
    assert Event.objects.filter(action="recurring_freeze_window.created").exists()
    # and everyone signed in reads it, filtered by environment
    listed = api_as("viewer").get("/api/v1/recurring-freeze-windows?environment=production")
    assert [w["name"] for w in listed.json()["results"]] == ["weekend"]
    assert (
        api_as("viewer")
        .get("/api/v1/recurring-freeze-windows?environment=staging")
        .json()["results"]
        == []
    )
    # and the same name twice in one environment is a conflict
    assert admin_posts(api_as).status_code == 409


def test_an_unknown_environment_filter_is_refused(world: Any, api_as: Any) -> None:
    for url in ("/api/v1/freeze-windows", "/api/v1/recurring-freeze-windows"):
        response = api_as("viewer").get(f"{url}?environment=moon")
        assert response.status_code == 400
        assert list(response.json()["error"]["fields"]) == ["environment"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown IANA time zone"),
        ({"timezone": "Berlin"}, "timezone", "unknown IANA time zone"),
        ({"days": ["fri", "funday"]}, "days", "'funday' is not a day of the week"),
        ({"days": []}, "days", "at least one day"),
        ({"days": ["fri", "friday"]}, "days", "fri is listed twice"),
        ({"days": "fri"}, "days", "must be a list"),
        ({"duration_minutes": 0}, "duration_minutes", "at least 1 minute"),
        ({"duration_minutes": 20000}, "duration_minutes", "at most 10080"),
        ({"start_time": "25:00"}, "start_time", "Time has wrong format"),
        ({"environment": "moon"}, "environment", "no environment 'moon'"),
    ],
)
def test_bad_recurring_windows_name_the_field(
    world: Any, api_as: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    response = admin_posts(api_as, **overrides)
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert field in fields, fields
    assert any(words in reason for reason in fields[field]), fields
    assert not RecurringFreezeWindow.objects.exists()


def test_a_patch_is_validated_too(world: Any, api_as: Any) -> None:
    window_id = admin_posts(api_as).json()["id"]
    url = f"/api/v1/recurring-freeze-windows/{window_id}"
    bad = api_as("admin").patch(url, {"timezone": "Nowhere/Special"}, format="json")
    assert bad.status_code == 400
    assert "timezone" in bad.json()["error"]["fields"]
    good = api_as("admin").patch(url, {"days": ["sat", "sun"]}, format="json")
    assert good.status_code == 200
    assert good.json()["days"] == ["sat", "sun"]


def test_one_off_windows_through_the_api(world: Any, api_as: Any) -> None:
    now = datetime.now(UTC)
    backwards = api_as("admin").post(
        "/api/v1/freeze-windows",
        {
            "environment": "production",
            "starts_at": (now + timedelta(hours=2)).isoformat(),
            "ends_at": now.isoformat(),
            "reason": "holidays",
        },
        format="json",
    )
    assert backwards.status_code == 400
    assert "must be after starts_at" in backwards.json()["error"]["fields"]["ends_at"][0]
    created = api_as("admin").post(
        "/api/v1/freeze-windows",
        {
            "environment": "production",
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
            "reason": "holidays",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["frozen_now"] is True
    assert freeze_of(world.production) is not None


def test_the_board_says_which_environments_are_frozen_until_when(world: Any) -> None:
    window = nightly(world, timedelta(hours=-1), 120)
    occurrence = window.covering(timezone.now())
    assert occurrence is not None
    client = Client()
    client.force_login(world.viewer)
    page = client.get("/deployments/").content.decode()
    assert 'id="frozen-environments"' in page
    assert "<strong>production</strong> is frozen until" in page
    assert occurrence[1].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") in page
    assert "Asia/Kolkata" in page
    assert "nightly batch jobs" in page
    assert "<strong>staging</strong>" not in page
    # and nothing is said once no window covers now
    window.delete()
    assert 'id="frozen-environments"' not in client.get("/deployments/").content.decode()
