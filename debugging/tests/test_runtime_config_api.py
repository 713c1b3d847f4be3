"""The runtime config API: versions, the audited diff, secrets never echoed, revert, 400s."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.models import Event
from debugging.choices import ConfigEvent
from debugging.models import ConfigEntry, ConfigVersion
from debugging.tests.conftest import CONFIG_URL

pytestmark = pytest.mark.django_db


def _set(client: Any, *items: dict[str, Any], **extra: Any) -> Any:
    return client.patch(CONFIG_URL, {"set": list(items), **extra}, format="json")


def test_each_change_is_a_new_version_with_one_event(api_as: Any, world: Any) -> None:
    owner = api_as("owner")
    # when
    first = _set(
        owner,
        {"kind": "log_level", "key": "payments.client", "value": "debug"},
        {"kind": "flag", "key": "new_checkout", "value": True},
    )
    second = _set(
        owner, {"kind": "flag", "key": "new_checkout", "value": False}, message="turn it off"
    )
    # then
    assert first.status_code == 200, first.json()
    assert first.json()["version"] == 1
    assert second.json()["version"] == 2
    entries = {(e["kind"], e["key"]): e["value"] for e in second.json()["entries"]}
    assert entries == {("log_level", "payments.client"): "DEBUG", ("flag", "new_checkout"): False}
    events = list(Event.objects.filter(action=ConfigEvent.CHANGED).order_by("id"))
    assert len(events) == 2
    assert events[1].payload["diff"]["changed"] == [
        {"kind": "flag", "key": "new_checkout", "before": True, "after": False}
    ]
    assert events[1].service == world.service and events[1].environment == world.production


def test_a_change_that_changes_nothing_makes_no_version(api_as: Any) -> None:
    owner = api_as("owner")
    _set(owner, {"kind": "value", "key": "batch_size", "value": 50})
    again = _set(owner, {"kind": "value", "key": "batch_size", "value": 50})
    assert again.json()["version"] == 1
    assert Event.objects.filter(action=ConfigEvent.CHANGED).count() == 1


def test_secrets_are_encrypted_and_never_echoed(api_as: Any) -> None:
    owner = api_as("owner")
    # when
    answer = _set(owner, {"kind": "secret", "key": "db_password", "value": "correct-horse-1234"})
    changed = _set(owner, {"kind": "secret", "key": "db_password", "value": "battery-staple-9876"})
    # then
    body = str(answer.json()) + str(changed.json()) + str(owner.get(CONFIG_URL).json())
    assert "correct-horse" not in body and "battery-staple" not in body
    shown = changed.json()["entries"][0]["secret"]
    assert shown["set"] is True and shown["masked"].endswith("9876")
    last = Event.objects.filter(action=ConfigEvent.CHANGED).order_by("id").last()
    assert last is not None
    diff = last.payload["diff"]
    assert diff["changed"] == [{"kind": "secret", "key": "db_password", "change": "changed"}]
    assert "battery" not in str(Event.objects.values_list("payload", flat=True))
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM debugging_configentry")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored and all("battery" not in s and "correct" not in s for s in stored)
    newest = ConfigEntry.objects.filter(key="db_password").order_by("version__number").last()
    assert newest is not None and newest.secret == "battery-staple-9876"


def test_revert_goes_back_to_an_earlier_version_in_one_call(api_as: Any) -> None:
    owner = api_as("owner")
    _set(owner, {"kind": "value", "key": "batch_size", "value": 50})
    _set(
        owner,
        {"kind": "value", "key": "batch_size", "value": 500},
        {"kind": "flag", "key": "risky", "value": True},
    )
    # when
    reverted = owner.post(f"{CONFIG_URL}/revert", {"version": 1}, format="json")
    # then
    assert reverted.status_code == 200, reverted.json()
    assert reverted.json()["version"] == 3 and reverted.json()["reverted_to"] == 1
    assert reverted.json()["entries"] == [{"kind": "value", "key": "batch_size", "value": 50}]
    event = Event.objects.get(action=ConfigEvent.REVERTED)
    assert event.payload["diff"]["removed"] == [{"kind": "flag", "key": "risky", "value": True}]
    versions = owner.get(f"{CONFIG_URL}/versions").json()["results"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    old = owner.get(CONFIG_URL, {"version": 2}).json()["entries"]
    assert {"kind": "value", "key": "batch_size", "value": 500} in old


@pytest.mark.parametrize(
    ("item", "field", "reason"),
    [
        ({"kind": "log_level", "key": "app", "value": "LOUD"}, "set.1.value", "unknown level"),
        ({"kind": "log_level", "key": "app", "value": "TRACE"}, "set.1.value", "actuator"),
        ({"kind": "flag", "key": "bad key!", "value": True}, "set.1.key", "bad key name"),
        ({"kind": "flag", "key": "f", "value": "yes"}, "set.1.value", "true or false"),
        ({"kind": "endpoint", "key": "inv", "value": "not a url"}, "set.1.value", "URL"),
        ({"kind": "colour", "key": "c", "value": 1}, "set.1.kind", "must be one of"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_nothing_is_saved(
    api_as: Any, item: dict[str, Any], field: str, reason: str
) -> None:
    good = {"kind": "value", "key": "fine", "value": 1}
    answer = _set(api_as("owner"), good, item)
    assert answer.status_code == 400
    assert reason in " ".join(answer.json()["error"]["fields"][field])
    assert ConfigVersion.objects.count() == 0 and ConfigEntry.objects.count() == 0
    assert not Event.objects.filter(action=ConfigEvent.CHANGED).exists()


def test_a_stale_expected_version_is_409(api_as: Any) -> None:
    owner = api_as("owner")
    _set(owner, {"kind": "value", "key": "a", "value": 1})
    answer = _set(owner, {"kind": "value", "key": "a", "value": 2}, expected_version=0)
    assert answer.status_code == 409


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("owner", 200),
        ("deployer", 403),
        ("viewer", 403),
        ("outsider", 403),
        ("anonymous", 401),
        ("admin", 200),
    ],
)
def test_only_the_owning_team_changes_it(api_as: Any, persona: str, expected: int) -> None:
    answer = _set(api_as(persona), {"kind": "value", "key": "a", "value": 1})
    assert answer.status_code == expected


def test_a_write_token_of_another_team_is_refused(token_client: Any, world: Any) -> None:
    client, _ = token_client(world.other_team, ["write"])
    answer = _set(client, {"kind": "value", "key": "a", "value": 1})
    assert answer.status_code == 403
    assert "search" in answer.json()["error"]["message"]
