"""Debug windows: opened through the API, applied to a real demo-fleet process's actuator
loggers endpoint, ended, reverted and read back; client overlays and read-back; bad input.

The Celery tasks' bodies (windows.apply, close_due, claim_reverts, revert) are called here
in-process, in the order the beat and the worker run them; no worker runs in these tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Instance
from controlplane.models import Event
from debugging import appliers, delivery, windows
from debugging.choices import DebugWindowEvent, Delivery, Revert, WindowState
from debugging.models import DebugTarget, DebugWindow, DeliverySetting

pytestmark = pytest.mark.django_db

WINDOWS = "/api/v1/debug-windows"


def _open(client: Any, **fields: Any) -> Any:
    body = {
        "service": "checkout",
        "environment": "production",
        "logger": "payments.client",
        "level": "DEBUG",
        "minutes": 15,
        "reason": "incident #12",
        **fields,
    }
    return client.post(WINDOWS, body, format="json")


def _end(window_id: int) -> None:
    """Let the window's time run out, then run the beat's pass and the revert task."""
    DebugWindow.objects.filter(pk=window_id).update(ends_at=timezone.now() - timedelta(seconds=1))
    assert windows.close_due() == [window_id]
    assert windows.claim_reverts() == [window_id]
    windows.revert(window_id)


@pytest.fixture
def on_fleet(world: Any, demo_fleet: Any) -> tuple[Instance, dict[str, Any]]:
    """A catalog instance of checkout at a real fleet instance's address (actuator service)."""
    spec = demo_fleet.instances("checkout")[0]
    DeliverySetting.objects.create(service=world.service, method=Delivery.ACTUATOR)
    instance = Instance.objects.create(
        service=world.service,
        environment=world.production,
        host=spec["host"],
        port=spec["port"],
        zone=spec.get("zone", ""),
    )
    return instance, spec


def test_an_actuator_window_changes_the_level_then_reverts_and_reads_it_back(
    api_as: Any, on_fleet: Any, demo_fleet: Any
) -> None:
    _, spec = on_fleet
    assert demo_fleet.logger(spec, "payments.client")["configuredLevel"] is None
    # when: opened and applied
    opened = _open(api_as("deployer"), incident="12")
    assert opened.status_code == 201, opened.json()
    window_id = opened.json()["id"]
    assert windows.apply(window_id) == 1
    # then: the fleet instance's logger is at DEBUG
    assert demo_fleet.logger(spec, "payments.client") == {
        "configuredLevel": "DEBUG",
        "effectiveLevel": "DEBUG",
    }
    # when: the window ends
    _end(window_id)
    # then: back to inheriting, read back and recorded as verified
    assert demo_fleet.logger(spec, "payments.client") == {
        "configuredLevel": None,
        "effectiveLevel": "INFO",
    }
    target = DebugTarget.objects.get(window_id=window_id)
    assert target.revert == Revert.VERIFIED and target.read_back is None
    assert Event.objects.filter(action=DebugWindowEvent.REVERT_VERIFIED).count() == 1
    shown = api_as("viewer").get(f"{WINDOWS}/{window_id}").json()
    assert shown["state"] == WindowState.CLOSED and shown["targets"][0]["revert"] == "verified"
    assert shown["opened_by"] == "deployer" and shown["incident"] == "12"


def test_a_revert_that_cannot_be_read_back_is_unverified_with_an_event(
    api_as: Any, on_fleet: Any, demo_fleet: Any
) -> None:
    instance, spec = on_fleet
    window_id = _open(api_as("deployer"), logger="payments").json()["id"]
    windows.apply(window_id)
    # given: the instance stops answering at that address before the revert
    Instance.objects.filter(pk=instance.pk).update(port=1)
    DebugWindow.objects.filter(pk=window_id).update(ends_at=timezone.now())
    windows.close_due()
    # when: a pass inside the read-back grace leaves it pending ...
    windows.claim_reverts()
    assert windows.revert(window_id) == {"verified": 0, "unverified": 0, "pending": 1}
    # ... and one after it records it unverified
    DebugWindow.objects.filter(pk=window_id).update(
        verify_until=timezone.now() - timedelta(seconds=1), lease_until=None
    )
    assert windows.claim_reverts() == [window_id]
    assert windows.revert(window_id)["unverified"] == 1
    # then
    target = DebugTarget.objects.get(window_id=window_id)
    assert target.revert == Revert.UNVERIFIED and "127.0.0.1:1" in target.revert_detail
    event = Event.objects.get(action=DebugWindowEvent.REVERT_UNVERIFIED)
    assert event.service_id == instance.service_id
    # The fleet is shared by this module's tests: put its logger back as it was.
    instance.refresh_from_db()
    instance.port = spec["port"]
    appliers.actuator_set(instance, "payments", None)


def test_a_client_window_is_an_overlay_for_the_instances_it_covers(api_as: Any, world: Any) -> None:
    # given: two instances in different zones
    a = Instance.objects.create(
        service=world.service, environment=world.production, host="10.0.0.1", port=80, zone="zone-a"
    )
    b = Instance.objects.create(
        service=world.service, environment=world.production, host="10.0.0.2", port=80, zone="zone-b"
    )
    # when
    opened = _open(api_as("deployer"), zone="zone-a")
    # then
    assert opened.status_code == 201, opened.json()
    snapshot = delivery.load_snapshot(world.service.pk, world.production.pk)
    tag_a, body_a = snapshot.answer(a.pk, a.zone)
    tag_b, body_b = snapshot.answer(b.pk, b.zone)
    assert body_a["log_levels"] == {"payments.client": "DEBUG"}
    assert body_b["log_levels"] == {}
    assert tag_a != tag_b and tag_b == '"0"'
    assert [t["instance"] for t in opened.json()["targets"]] == [a.pk]


def test_a_client_revert_is_verified_by_the_instances_report(
    api_as: Any, world: Any, instance: Any, report_token: str
) -> None:
    from rest_framework.test import APIClient

    window_id = _open(api_as("deployer")).json()["id"]
    windows.apply(window_id)
    DebugWindow.objects.filter(pk=window_id).update(ends_at=timezone.now())
    windows.close_due()
    reporter = APIClient()
    reporter.credentials(HTTP_AUTHORIZATION=f"Bearer {report_token}")
    # when: the instance reports that it dropped the window's level
    answer = reporter.post(
        "/api/v1/applied-levels", {"instance": instance.pk, "levels": {}}, format="json"
    )
    assert answer.status_code == 204
    windows.claim_reverts()
    # then
    assert windows.revert(window_id)["verified"] == 1


def test_an_instance_joining_during_the_window_gets_it(
    api_as: Any, world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    window_id = _open(api_as("deployer")).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        joined, _ = Instance.register(
            service=world.service,
            environment=world.production,
            host="10.0.0.9",
            port=80,
            reported={},
        )
    assert DebugTarget.objects.filter(window_id=window_id, instance=joined).exists()


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"minutes": 241}, "minutes", "at most 4 h"),
        ({"minutes": None, "duration": "5h"}, "duration", "at most 4 h"),
        ({"level": "LOUD"}, "level", "unknown level"),
        ({"level": "TRACE"}, "level", "actuator"),
        ({"reason": ""}, "reason", "required"),
        ({"logger": "no spaces"}, "logger", "logger name"),
        ({"zone": "a", "instance": 999999}, "instance", "not an instance"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_nothing_is_stored(
    api_as: Any, fields: dict[str, Any], field: str, reason: str
) -> None:
    answer = _open(api_as("deployer"), **fields)
    assert answer.status_code == 400
    assert reason in " ".join(answer.json()["error"]["fields"][field])
    assert (
        not DebugWindow.objects.exists()
        and not Event.objects.filter(action=DebugWindowEvent.OPENED).exists()
    )


def test_it_closes_early_once_and_only_for_the_team(api_as: Any, world: Any) -> None:
    window_id = _open(api_as("deployer")).json()["id"]
    assert api_as("outsider").post(f"{WINDOWS}/{window_id}/close").status_code == 403
    assert api_as("viewer").post(f"{WINDOWS}/{window_id}/close").status_code == 403
    closed = api_as("deployer").post(f"{WINDOWS}/{window_id}/close")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert closed.json()["closed_by"] == "deployer"
    assert api_as("deployer").post(f"{WINDOWS}/{window_id}/close").status_code == 409


def test_outsiders_cannot_open_one(api_as: Any) -> None:
    assert _open(api_as("outsider")).status_code == 403
    assert _open(api_as("viewer")).status_code == 403


def test_an_unreachable_instance_gets_the_window_when_the_beat_retries(
    api_as: Any, on_fleet: Any, demo_fleet: Any
) -> None:
    instance, spec = on_fleet
    # given: the instance is not answering at its address when the window opens
    Instance.objects.filter(pk=instance.pk).update(port=1)
    window_id = _open(api_as("deployer"), logger="payments.retry").json()["id"]
    assert windows.apply(window_id) == 0
    target = DebugTarget.objects.get(window_id=window_id)
    assert "127.0.0.1:1" in target.apply_error and target.next_apply_at is not None
    # when: it is back, and the beat's pass after the backoff retries
    Instance.objects.filter(pk=instance.pk).update(port=spec["port"])
    assert windows.claim_applies() == []
    assert windows.claim_applies(timezone.now() + timedelta(seconds=3)) == [window_id]
    assert windows.apply(window_id) == 1
    # then: the fleet instance's logger is at DEBUG, and it is reverted at the end
    assert demo_fleet.logger(spec, "payments.retry")["configuredLevel"] == "DEBUG"
    _end(window_id)
    assert demo_fleet.logger(spec, "payments.retry")["configuredLevel"] is None
    assert DebugTarget.objects.get(window_id=window_id).revert == Revert.VERIFIED
