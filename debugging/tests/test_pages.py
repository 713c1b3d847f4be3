"""The pages: the service page's Debug windows section with its close button, the config
page with one-click revert (and secrets masked)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from debugging import config
from debugging.config import Item
from debugging.models import DebugWindow

pytestmark = pytest.mark.django_db


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_service_page_shows_who_why_and_a_close_button(world: Any, api_as: Any) -> None:
    api_as("deployer").post(
        "/api/v1/debug-windows",
        {
            "service": "checkout",
            "environment": "production",
            "logger": "payments.client",
            "level": "DEBUG",
            "minutes": 15,
            "reason": "checkout errors",
            "incident": "12",
        },
        format="json",
    )
    window = DebugWindow.objects.get()
    page = _signed_in(world.deployer).get(world.service.get_absolute_url()).content.decode()
    assert "Debug windows" in page and "checkout errors" in page and "incident 12" in page
    assert f"/debugging/windows/{window.pk}/close" in page
    viewer_page = _signed_in(world.viewer).get(world.service.get_absolute_url()).content.decode()
    assert f"/debugging/windows/{window.pk}/close" not in viewer_page
    # when
    closed = _signed_in(world.deployer).post(f"/debugging/windows/{window.pk}/close")
    # then
    assert closed.status_code == 302
    window.refresh_from_db()
    assert window.state == "closed" and window.closed_by_label == "deployer"


def test_the_config_page_reverts_in_one_click_and_masks_secrets(world: Any) -> None:
    config.change(
        world.service,
        world.production,
        actor="test",
        set_items=[Item("value", "batch", 1), Item("secret", "key", "hunter2-abcd")],
    )
    config.change(
        world.service, world.production, actor="test", set_items=[Item("value", "batch", 2)]
    )
    owner = _signed_in(world.owner)
    page = owner.get("/debugging/config/checkout/production").content.decode()
    assert "hunter2" not in page and "abcd" in page
    assert "Revert to v1" in page
    # when
    answer = owner.post("/debugging/config/checkout/production/revert/1")
    # then
    assert answer.status_code == 302
    current = config.current(world.service, world.production)
    assert current is not None and current.number == 3
    assert config.document(current)["values"] == {"batch": 1}
    viewer = _signed_in(world.viewer)
    assert "Revert to" not in viewer.get("/debugging/config/checkout/production").content.decode()
    assert viewer.post("/debugging/config/checkout/production/revert/1").status_code == 403


def test_the_incident_page_shows_the_windows_that_reference_it(world: Any, api_as: Any) -> None:
    # Tests may cross floors to build fixtures: an incident from alerts.
    from alerts.choices import IncidentState, RuleKind, Severity
    from alerts.models import Incident, Rule

    rule = Rule.objects.create(
        team=world.team,
        name="down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"]},
    )
    incident = Incident.objects.create(
        rule=rule,
        team=world.team,
        service=world.service,
        environment=world.production,
        subject_type="catalog.service",
        subject_id=str(world.service.pk),
        subject_label="checkout",
        dedup_key="d",
        severity=Severity.PAGE,
        state=IncidentState.FIRING,
        title="checkout is down",
    )
    api_as("deployer").post(
        "/api/v1/debug-windows",
        {
            "service": "checkout",
            "environment": "production",
            "logger": "payments.client",
            "level": "DEBUG",
            "minutes": 15,
            "reason": "why is checkout down",
            "incident": f"#{incident.pk}",
        },
        format="json",
    )
    page = _signed_in(world.viewer).get(f"/alerts/incidents/{incident.pk}/").content.decode()
    assert "Debug windows for this incident" in page and "why is checkout down" in page
