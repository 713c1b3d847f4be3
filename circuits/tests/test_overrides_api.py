"""Overrides: set by owners and deployers, audited, and polled by services with ETag / 304."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from circuits import overrides
from circuits.models import CircuitOverride
from controlplane.models import Event

URL = "/api/v1/circuits/overrides"


def force(client: Any, **fields: Any) -> Any:
    body = {
        "service": "checkout",
        "circuit": "payments-api",
        "state": "forced_open",
        "reason": "stripe incident",
        "ttl_seconds": 600,
        **fields,
    }
    return client.post(URL, body, format="json")


@pytest.mark.django_db
def test_a_poller_gets_304_until_something_changes(api_as: Any, reporter: Any) -> None:
    # given a service polling its overrides
    first = reporter.get(URL, {"service": "checkout", "environment": "production"})
    assert first.status_code == 200 and first.json()["overrides"] == []
    tag = first["ETag"]
    # when it polls again with the ETag and nothing changed
    again = reporter.get(
        URL, {"service": "checkout", "environment": "production"}, HTTP_IF_NONE_MATCH=tag
    )
    # then it gets 304 with no body
    assert again.status_code == 304 and not again.content
    # when a deployer forces a circuit open
    assert force(api_as("deployer")).status_code == 201
    # then the next poll sees it, under a new ETag
    changed = reporter.get(
        URL, {"service": "checkout", "environment": "production"}, HTTP_IF_NONE_MATCH=tag
    )
    assert changed.status_code == 200 and changed["ETag"] != tag
    [override] = changed.json()["overrides"]
    assert (override["circuit"], override["state"], override["environment"]) == (
        "payments-api",
        "forced_open",
        None,
    )


@pytest.mark.django_db
def test_an_override_for_one_environment_is_not_served_to_another(
    world: Any, api_as: Any, reporter: Any
) -> None:
    force(api_as("owner"), environment="staging")
    staging = reporter.get(URL, {"service": "checkout", "environment": "staging"}).json()
    production = reporter.get(URL, {"service": "checkout", "environment": "production"}).json()
    assert len(staging["overrides"]) == 1 and production["overrides"] == []


@pytest.mark.django_db(transaction=True)
def test_setting_and_lifting_are_audited(world: Any, api_as: Any) -> None:
    created = force(api_as("deployer")).json()
    lifted = api_as("owner").delete(f"{URL}/{created['id']}")
    assert lifted.status_code == 204
    events = list(Event.objects.filter(action__startswith="circuit.override").order_by("id"))
    assert [(e.action, e.actor_label) for e in events] == [
        ("circuit.override_set", "deployer"),
        ("circuit.override_cleared", "owner"),
    ]
    assert events[0].team_id == world.team.pk and "stripe incident" in events[0].message


@pytest.mark.django_db
def test_a_new_override_replaces_the_standing_one(api_as: Any) -> None:
    force(api_as("deployer"))
    force(api_as("deployer"), state="forced_closed")
    standing = CircuitOverride.objects.filter(cleared_at__isnull=True)
    assert list(standing.values_list("state", flat=True)) == ["forced_closed"]


@pytest.mark.django_db(transaction=True)
def test_an_expired_override_is_no_longer_served_and_is_lifted_once(
    api_as: Any, reporter: Any
) -> None:
    force(api_as("deployer"))
    CircuitOverride.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    # served no more, even before the sweep
    assert reporter.get(URL, {"service": "checkout"}).json()["overrides"] == []
    # the sweep lifts it, once
    assert overrides.expire_overrides() == 1
    assert overrides.expire_overrides() == 0
    cleared = Event.objects.get(action="circuit.override_cleared")
    assert cleared.payload["why"] == "expired" and cleared.actor_label == "system"


@pytest.mark.django_db
def test_it_refuses_a_bad_override_naming_the_field(api_as: Any) -> None:
    response = force(api_as("deployer"), state="ajar", ttl_seconds=None, expires_at=None)
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) >= {"state"}
    far = (timezone.now() + timedelta(days=31)).isoformat()
    response = force(api_as("deployer"), ttl_seconds=None, expires_at=far)
    assert response.json()["error"]["fields"] == {"expires_at": ["at most 30 days ahead"]}


@pytest.mark.django_db
def test_polling_needs_a_service(reporter: Any) -> None:
    response = reporter.get(URL)
    assert response.status_code == 400
    assert "service" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_a_report_token_reads_only_its_own_teams_overrides(world: Any, token_client: Any) -> None:
    client, _ = token_client(world.other_team, ["report"])
    assert client.get(URL, {"service": "checkout"}).status_code == 403
    assert client.get(URL, {"service": "indexer"}).status_code == 200
