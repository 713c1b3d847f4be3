"""The service page's debug-window forms: choosing the delivery method (owners) and opening a
window (deployers and owners), with the API's checks; CSRF; outsiders get no form and 403."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from catalog.models import Instance
from controlplane.models import Event
from debugging.choices import DebugWindowEvent, Delivery
from debugging.models import DebugWindow, DeliverySetting

pytestmark = pytest.mark.django_db

PAGE = "/catalog/services/checkout/"
DELIVERY = "/debugging/delivery/checkout"
OPEN = "/debugging/windows/open/checkout"
WINDOW = {
    "environment": "production",
    "logger": "payments.client",
    "level": "DEBUG",
    "minutes": "15",
    "scope": "",
    "reason": "checkout errors",
    "incident": "12",
}


def as_(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def _page(user: Any) -> str:
    answer = as_(user).get(PAGE)
    assert answer.status_code == 200
    return answer.content.decode()


def test_owners_get_both_forms_deployers_the_open_form_viewers_neither(world: Any) -> None:
    owner, deployer, viewer, outsider = (
        _page(world.owner),
        _page(world.deployer),
        _page(world.viewer),
        _page(world.outsider),
    )
    assert f'action="{DELIVERY}"' in owner and f'action="{OPEN}"' in owner
    assert f'action="{DELIVERY}"' not in deployer and f'action="{OPEN}"' in deployer
    for page in (viewer, outsider):
        assert f'action="{DELIVERY}"' not in page and f'action="{OPEN}"' not in page
    # keyboard-usable: every field has a label pointing at it
    for field in ("dd-webhook-url", "dd-webhook-secret", "dw-logger", "dw-reason", "dw-minutes"):
        assert f'for="{field}"' in owner and f'id="{field}"' in owner


def test_an_owner_chooses_the_webhook_method(world: Any, hook: Any) -> None:
    answer = as_(world.owner).post(
        DELIVERY,
        {"method": "webhook", "webhook_url": hook.url, "webhook_secret": "s" * 20},
    )
    assert answer.status_code == 302
    setting = DeliverySetting.objects.get(service=world.service)
    assert (setting.method, setting.webhook_url, setting.webhook_secret) == (
        Delivery.WEBHOOK,
        hook.url,
        "s" * 20,
    )
    page = _page(world.owner)
    assert "<strong>webhook</strong>" in page and "s" * 20 not in page and "••••••••ssss" in page
    event = Event.objects.get(action=DebugWindowEvent.DELIVERY_CHANGED)
    assert event.actor_label == "owner"


def test_a_refused_url_is_400_with_the_reason_next_to_the_field(world: Any) -> None:
    answer = as_(world.owner).post(
        DELIVERY, {"method": "webhook", "webhook_url": "http://169.254.169.254/latest/"}
    )
    assert answer.status_code == 400
    page = answer.content.decode()
    assert 'id="dd-url-error"' in page and "cloud metadata" in page
    assert 'aria-describedby="dd-url-error"' in page
    assert 'value="http://169.254.169.254/latest/"' in page  # what was typed is kept
    assert not DeliverySetting.objects.exists()


def test_outsiders_viewers_and_deployers_cannot_change_delivery(world: Any) -> None:
    for user in (world.outsider, world.viewer, world.deployer):
        answer = as_(user).post(DELIVERY, {"method": "actuator"})
        assert answer.status_code == 403
    assert not DeliverySetting.objects.exists()


def test_a_deployer_opens_a_window_on_one_instance(world: Any, instance: Instance) -> None:
    page = _page(world.deployer)
    assert f'value="instance:{instance.pk}"' in page and 'value="zone:eu-west-1a"' in page
    answer = as_(world.deployer).post(OPEN, {**WINDOW, "scope": f"instance:{instance.pk}"})
    assert answer.status_code == 302
    window = DebugWindow.objects.get()
    assert (window.logger, window.level, window.instance_id, window.incident_ref) == (
        "payments.client",
        "DEBUG",
        instance.pk,
        "12",
    )
    assert window.opened_by == world.deployer and window.targets.count() == 1
    assert 14 * 60 < (window.ends_at - window.opened_at).total_seconds() <= 15 * 60 + 1
    assert Event.objects.filter(action=DebugWindowEvent.OPENED).count() == 1
    assert "Close now" in _page(world.deployer)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"reason": ""}, "reason", "required"),
        ({"minutes": "100000"}, "minutes", "at most"),
        ({"minutes": "soon"}, "minutes", "positive number"),
        ({"level": "OFF"}, "level", ""),
        ({"logger": "bad logger!"}, "logger", "logger name"),
        ({"scope": "instance:999999"}, "scope", "not an instance"),
    ],
)
def test_bad_input_is_400_next_to_the_field_and_nothing_opens(
    world: Any, change: dict[str, str], field: str, reason: str
) -> None:
    answer = as_(world.deployer).post(OPEN, {**WINDOW, **change})
    assert answer.status_code == 400
    page = answer.content.decode()
    assert f'id="dw-{field}-error"' in page and reason in page
    assert 'value="checkout errors"' in page or change.get("reason") == ""
    assert not DebugWindow.objects.exists()


def test_outsiders_and_viewers_cannot_open_one(world: Any) -> None:
    for user in (world.outsider, world.viewer):
        assert as_(user).post(OPEN, WINDOW).status_code == 403
    assert not DebugWindow.objects.exists()


def test_the_forms_need_the_csrf_token(world: Any) -> None:
    client = as_(world.owner, csrf=True)
    assert client.post(OPEN, WINDOW).status_code == 403
    assert client.post(DELIVERY, {"method": "actuator"}).status_code == 403
    assert not DebugWindow.objects.exists() and not DeliverySetting.objects.exists()
    # with the token from the page, it goes through
    page = client.get(PAGE).content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    answer = client.post(DELIVERY, {"method": "actuator", "csrfmiddlewaretoken": token})
    assert answer.status_code == 302
    assert DeliverySetting.objects.get().method == Delivery.ACTUATOR
