"""Login lockout: repeated failures through the login form block that login for a while."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

from controlplane.models import Event
from identity.choices import AccountEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings: Any) -> Any:
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return settings


def log_in(client: Client, username: str, password: str, **headers: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password}, **headers)


def test_three_failures_lock_the_login_even_with_the_right_password(
    world: Any, limits: Any
) -> None:
    # given
    client = Client()
    failures = [log_in(client, "owner", "wrong").status_code for _ in range(2)]
    # when the third failure, then the right password
    third = log_in(client, "owner", "wrong")
    right = log_in(client, "owner", "pw-owner")
    # then the form said "wrong" twice, then the lockout page for 15 minutes
    assert failures == [200, 200]
    assert third.status_code == 429
    assert right.status_code == 429
    assert "Logging in is blocked for 15 minutes after 3 failed attempts" in right.content.decode()
    assert int(right["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in client.session
    event = Event.objects.get(action=AccountEvent.LOCKED_OUT)
    assert event.payload == {"username": "owner", "ip_address": "127.0.0.1"}


def test_the_lock_is_for_that_username_only(world: Any, limits: Any) -> None:
    # given owner is locked out from this address
    for _ in range(3):
        log_in(Client(), "owner", "wrong")
    # when someone else logs in from the same address
    answer = log_in(Client(), "viewer", "pw-viewer")
    # then they are in
    assert answer.status_code == 302


def test_the_lock_lifts_after_the_cool_off(world: Any, limits: Any) -> None:
    # given
    for _ in range(3):
        log_in(Client(), "owner", "wrong")
    # when the cool-off has passed
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    answer = log_in(Client(), "owner", "pw-owner")
    # then
    assert answer.status_code == 302


def test_x_forwarded_for_is_ignored_unless_a_proxy_is_trusted(world: Any, limits: Any) -> None:
    # given failures each claiming another address
    for n in range(3):
        log_in(Client(), "owner", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    # when
    answer = log_in(Client(), "owner", "pw-owner", HTTP_X_FORWARDED_FOR="203.0.113.99")
    # then the forged header bought nothing
    assert answer.status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_is_locked(world: Any, limits: Any) -> None:
    # given one trusted proxy: the client is the last X-Forwarded-For entry
    limits.SIGNALBOX_TRUSTED_PROXY_COUNT = 1
    for _ in range(3):
        log_in(Client(), "owner", "wrong", HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.5")
    # when the same client forges another first entry, and another client logs in
    forged = log_in(Client(), "owner", "pw-owner", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.5")
    elsewhere = log_in(Client(), "owner", "pw-owner", HTTP_X_FORWARDED_FOR="203.0.113.6")
    # then the locked client stays locked and the other one is in
    assert forged.status_code == 429
    assert elsewhere.status_code == 302
    assert AccessAttempt.objects.get().ip_address == "203.0.113.5"


def test_a_success_clears_the_count(world: Any, limits: Any) -> None:
    client = Client()
    for _ in range(2):
        log_in(client, "owner", "wrong")
    assert log_in(client, "owner", "pw-owner").status_code == 302
    for _ in range(2):
        log_in(Client(), "owner", "wrong")
    assert log_in(Client(), "owner", "pw-owner").status_code == 302


def test_local_login_for_admins_only_refuses_others_with_a_reason(
    world: Any, settings: Any
) -> None:
    # given single sign-on for everyone, local passwords for break-glass admins
    settings.SIGNALBOX_LOCAL_LOGIN = "admins"
    # when
    refused = log_in(Client(), "owner", "pw-owner")
    admitted = log_in(Client(), "root", "pw-root")
    # then
    assert refused.status_code == 200
    assert "kept for platform admins (break-glass)" in refused.content.decode()
    assert admitted.status_code == 302
