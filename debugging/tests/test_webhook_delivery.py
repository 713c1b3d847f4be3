"""Debug windows applied through a webhook: a real HTTP receiver on loopback gets the signed
JSON on open and on revert; the delivery setting's validation and permissions; the outbound
guard refusing a metadata address; a receiver answering 500 retried with backoff.

The Celery tasks' bodies (windows.apply, claim_applies, close_due, claim_reverts, revert)
are called in-process, in the order the beat and the worker run them; no worker runs here."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Instance
from controlplane.models import Event
from debugging import appliers, windows
from debugging.choices import DebugWindowEvent, Delivery, Revert, WindowState
from debugging.models import DebugTarget, DebugWindow, DeliverySetting

pytestmark = pytest.mark.django_db

DELIVERY = "/api/v1/debug-delivery/checkout"
SECRET = "debug-hook-secret-0123456789"


def _open(client: Any, **fields: Any) -> Any:
    body = {
        "service": "checkout",
        "environment": "production",
        "logger": "payments.client",
        "level": "DEBUG",
        "minutes": 15,
        "reason": "checkout errors",
        "incident": "12",
        **fields,
    }
    return client.post("/api/v1/debug-windows", body, format="json")


@pytest.fixture
def webhooked(api_as: Any, hook: Any, instance: Instance) -> Instance:
    answer = api_as("owner").patch(
        DELIVERY,
        {"method": "webhook", "webhook_url": hook.url, "webhook_secret": SECRET},
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    return instance


def _expected_body(
    window: DebugWindow, instance: Instance, action: str, level: Any
) -> dict[str, Any]:
    return {
        "action": action,
        "window": window.pk,
        "service": "checkout",
        "environment": "production",
        "instance": {"id": instance.pk, "host": "127.0.0.1", "port": 18001, "zone": "eu-west-1a"},
        "logger": "payments.client",
        "level": level,
        "reason": "checkout errors",
        "incident": "12",
        "ends_at": window.ends_at.isoformat(),
    }


def _check_signature(headers: dict[str, str], body: bytes) -> None:
    timestamp = headers[appliers.TIMESTAMP_HEADER]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert headers[appliers.SIGNATURE_HEADER] == "sha256=" + expected.hexdigest()
    assert abs(int(timestamp) - timezone.now().timestamp()) < 60


def test_the_receiver_gets_signed_json_on_open_and_on_revert(
    api_as: Any, hook: Any, webhooked: Instance
) -> None:
    # when: a window is opened and applied
    opened = _open(api_as("deployer"))
    assert opened.status_code == 201, opened.json()
    window = DebugWindow.objects.get(pk=opened.json()["id"])
    assert window.method == Delivery.WEBHOOK
    assert windows.apply(window.pk) == 1
    # then: one POST with exactly this body, signed with the service's secret
    [(headers, raw)] = hook.requests
    assert hook.bodies() == [_expected_body(window, webhooked, "apply", "DEBUG")]
    assert headers["Content-Type"] == "application/json"
    _check_signature(headers, raw)
    # when: it ends
    DebugWindow.objects.filter(pk=window.pk).update(ends_at=timezone.now())
    window.refresh_from_db()
    assert windows.close_due() == [window.pk]
    assert windows.claim_reverts() == [window.pk]
    assert windows.revert(window.pk) == {"verified": 1, "unverified": 0, "pending": 0}
    # then: the revert, back to the level it had (None: the receiver's own default)
    assert hook.bodies()[1] == _expected_body(window, webhooked, "revert", None)
    _check_signature(*hook.requests[1])
    target = DebugTarget.objects.get(window=window)
    assert target.revert == Revert.VERIFIED
    assert Event.objects.filter(action=DebugWindowEvent.REVERT_VERIFIED).count() == 1


def test_without_a_secret_nothing_is_signed(api_as: Any, hook: Any, webhooked: Instance) -> None:
    assert api_as("owner").patch(DELIVERY, {"webhook_secret": ""}, format="json").status_code == 200
    windows.apply(_open(api_as("deployer")).json()["id"])
    [(headers, _)] = hook.requests
    assert appliers.SIGNATURE_HEADER not in headers


def test_the_secret_is_stored_encrypted_and_never_shown(api_as: Any, webhooked: Instance) -> None:
    from django.db import connection

    shown = api_as("viewer").get(DELIVERY).json()
    assert shown["webhook_secret"] == {"set": True, "masked": "••••••••6789"}
    assert SECRET not in str(shown)
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM debugging_deliverysetting")
        [(stored,)] = cursor.fetchall()
    assert stored and SECRET not in stored
    assert DeliverySetting.objects.get().webhook_secret == SECRET
    event = Event.objects.get(action=DebugWindowEvent.DELIVERY_CHANGED)
    assert SECRET not in str(event.payload) and event.payload["webhook_secret"] == "changed"


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"method": "webhook", "webhook_url": "http://169.254.169.254/latest/"}, "webhook_url",
         "cloud metadata"),
        ({"method": "webhook", "webhook_url": ""}, "webhook_url", "required"),
        ({"method": "pigeon"}, "method", "must be one of"),
        ({"method": "webhook", "webhook_url": "http://127.0.0.1:9/h", "webhook_secret": "short"},
         "webhook_secret", "at least 16"),
    ],
)  # fmt: skip
def test_bad_settings_are_400_naming_the_field_and_nothing_is_saved(
    api_as: Any, world: Any, body: dict[str, str], field: str, reason: str
) -> None:
    answer = api_as("owner").patch(DELIVERY, body, format="json")
    assert answer.status_code == 400
    assert reason in " ".join(answer.json()["error"]["fields"][field]), answer.json()
    assert not DeliverySetting.objects.exists()


def test_only_the_teams_owners_change_it(api_as: Any, hook: Any, world: Any) -> None:
    body = {"method": "webhook", "webhook_url": hook.url}
    for persona in ("outsider", "viewer", "deployer"):
        assert api_as(persona).patch(DELIVERY, body, format="json").status_code in (403, 404)
    assert api_as("anonymous").patch(DELIVERY, body, format="json").status_code in (401, 403)
    assert not DeliverySetting.objects.exists()


def test_the_guard_refuses_a_metadata_address_at_call_time(
    api_as: Any, hook: Any, webhooked: Instance
) -> None:
    # given: the saved URL now points at the cloud metadata address (changed behind the API)
    DeliverySetting.objects.update(webhook_url="http://169.254.169.254/latest/meta-data/")
    window_id = _open(api_as("deployer")).json()["id"]
    # when
    assert windows.apply(window_id) == 0
    # then: nothing sent, the target records why
    target = DebugTarget.objects.get(window_id=window_id)
    assert target.applied_at is None and "refused by the outbound policy" in target.apply_error
    assert "metadata" in target.apply_error and hook.requests == []
    assert Event.objects.filter(action=DebugWindowEvent.APPLY_FAILED).count() == 1


def test_a_500_is_retried_with_backoff_until_it_takes(
    api_as: Any, hook: Any, webhooked: Instance
) -> None:
    hook.fail(500, 503)
    window_id = _open(api_as("deployer")).json()["id"]
    # when: the first call gets a 500
    assert windows.apply(window_id) == 0
    target = DebugTarget.objects.get(window_id=window_id)
    assert target.applied_at is None and "500" in target.apply_error
    assert target.apply_attempts == 1
    assert target.next_apply_at is not None
    assert timedelta(seconds=1) < target.next_apply_at - timezone.now() <= timedelta(seconds=2)
    # then: the beat does not retry before the backoff is over ...
    assert windows.claim_applies() == []
    # ... and does after it: a 503 this time, then a longer wait
    assert windows.claim_applies(timezone.now() + timedelta(seconds=3)) == [window_id]
    assert windows.apply(window_id) == 0
    target.refresh_from_db()
    assert target.apply_attempts == 2
    assert target.next_apply_at is not None
    assert timedelta(seconds=3) < target.next_apply_at - timezone.now() <= timedelta(seconds=4)
    # when: the receiver recovers
    assert windows.claim_applies(timezone.now() + timedelta(seconds=5)) == [window_id]
    assert windows.apply(window_id) == 1
    # then: applied, three calls made, the error cleared, two failures audited
    target.refresh_from_db()
    assert target.applied_at is not None and target.apply_error == ""
    assert len(hook.requests) == 3
    failed = Event.objects.filter(action=DebugWindowEvent.APPLY_FAILED).order_by("pk")
    assert [e.payload["attempt"] for e in failed] == [1, 2]
    assert Event.objects.filter(action=DebugWindowEvent.APPLIED).count() == 1


def test_a_failed_apply_is_not_retried_after_the_window_ends(
    api_as: Any, hook: Any, webhooked: Instance
) -> None:
    hook.fail(500)
    window_id = _open(api_as("deployer")).json()["id"]
    windows.apply(window_id)
    DebugWindow.objects.filter(pk=window_id).update(ends_at=timezone.now())
    windows.close_due()
    assert windows.claim_applies(timezone.now() + timedelta(minutes=1)) == []
    assert len(hook.requests) == 1
    # and the revert of what never took is not sent either (nothing to put back)
    assert windows.claim_reverts() == [window_id]
    assert windows.revert(window_id)["verified"] == 1
    assert len(hook.requests) == 1


def test_a_failing_revert_backs_off_then_gives_up_unverified(
    api_as: Any, hook: Any, webhooked: Instance
) -> None:
    window_id = _open(api_as("deployer")).json()["id"]
    assert windows.apply(window_id) == 1
    hook.fail(500, 500, 500)
    DebugWindow.objects.filter(pk=window_id).update(ends_at=timezone.now())
    windows.close_due()
    # when: the first revert gets a 500: pending, and leased away for the backoff
    assert windows.claim_reverts() == [window_id]
    assert windows.revert(window_id)["pending"] == 1
    assert windows.claim_reverts() == []
    assert windows.claim_reverts(timezone.now() + timedelta(seconds=3)) == [window_id]
    assert windows.revert(window_id)["pending"] == 1
    window = DebugWindow.objects.get(pk=window_id)
    assert window.revert_passes == 2
    assert window.lease_until is not None
    assert timedelta(seconds=3) < window.lease_until - timezone.now() <= timedelta(seconds=4)
    # when: still failing past the give-up time
    DebugWindow.objects.filter(pk=window_id).update(
        verify_until=timezone.now() - timedelta(seconds=1), lease_until=None
    )
    assert windows.claim_reverts() == [window_id]
    assert windows.revert(window_id)["unverified"] == 1
    # then: revert unverified, with the receiver's answer as the reason
    target = DebugTarget.objects.get(window_id=window_id)
    assert target.revert == Revert.UNVERIFIED and "500" in target.revert_detail
    assert Event.objects.filter(action=DebugWindowEvent.REVERT_UNVERIFIED).count() == 1
    assert DebugWindow.objects.get(pk=window_id).state == WindowState.CLOSED


def test_a_revert_that_fails_once_then_succeeds_is_verified(
    api_as: Any, hook: Any, webhooked: Instance
) -> None:
    window_id = _open(api_as("deployer")).json()["id"]
    windows.apply(window_id)
    hook.fail(502)
    DebugWindow.objects.filter(pk=window_id).update(ends_at=timezone.now())
    windows.close_due()
    windows.claim_reverts()
    assert windows.revert(window_id)["pending"] == 1
    assert windows.claim_reverts(timezone.now() + timedelta(seconds=3)) == [window_id]
    assert windows.revert(window_id)["verified"] == 1
    assert [b["action"] for b in hook.bodies()] == ["apply", "revert", "revert"]


def test_the_beats_tick_retries_the_failed_apply_once_the_backoff_is_over(
    api_as: Any, hook: Any, webhooked: Instance
) -> None:
    from controlplane.celery import app
    from debugging import tasks

    hook.fail(500)
    window_id = _open(api_as("deployer")).json()["id"]
    assert windows.apply(window_id) == 0
    # Celery runs the queued task in-process here (no worker in unit tests); the tick is real.
    app.conf.task_always_eager = True
    try:
        tasks.tick()  # inside the backoff: nothing sent
        assert len(hook.requests) == 1
        DebugTarget.objects.filter(window_id=window_id).update(next_apply_at=timezone.now())
        tasks.tick()
    finally:
        app.conf.task_always_eager = False
    assert len(hook.requests) == 2
    assert DebugTarget.objects.get(window_id=window_id).applied_at is not None
