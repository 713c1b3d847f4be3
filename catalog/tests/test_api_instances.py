"""Instances: owners edit them; instances register and deregister themselves, idempotently."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from catalog import signals
from catalog.choices import Lifecycle
from catalog.models import Instance
from controlplane.models import Event

pytestmark = pytest.mark.django_db

ADDRESS = {"service": "checkout", "environment": "staging", "host": "10.0.0.5", "port": 8080}


@pytest.fixture
def reporter(world: Any, token_client: Any) -> Any:
    client, _ = token_client(world.team, ["report"])
    return client


@pytest.fixture
def heard() -> Iterator[list[tuple[str, int]]]:
    """What the catalog's signals told their receivers (the way health listens)."""
    got: list[tuple[str, int]] = []

    def on_registered(sender: Any, instance: Instance, **kwargs: Any) -> None:
        got.append(("registered", instance.pk))

    def on_deregistered(sender: Any, instance: Instance, **kwargs: Any) -> None:
        got.append(("deregistered", instance.pk))

    signals.instance_registered.connect(on_registered)
    signals.instance_deregistered.connect(on_deregistered)
    yield got
    signals.instance_registered.disconnect(on_registered)
    signals.instance_deregistered.disconnect(on_deregistered)


def test_an_instance_registers_itself(
    reporter: Any, heard: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = reporter.post(
            "/api/v1/instances/register",
            {**ADDRESS, "version": "1.4.2", "zone": "zone-a", "labels": {"canary": "false"}},
        )
    # then
    assert response.status_code == 201
    body = response.json()
    assert body["address"] == "10.0.0.5:8080"
    assert body["lifecycle"] == Lifecycle.REGISTERED
    instance = Instance.objects.get()
    assert (instance.version, instance.zone, instance.labels) == (
        "1.4.2",
        "zone-a",
        {"canary": "false"},
    )
    assert Event.objects.get(action="instance.registered").actor_label.startswith("token:payments/")
    assert heard == [("registered", instance.pk)]


def test_registering_again_updates_the_same_instance(reporter: Any) -> None:
    # given
    reporter.post("/api/v1/instances/register", {**ADDRESS, "version": "1.4.2", "zone": "a"})
    first_seen = Instance.objects.get().last_seen_at
    # when it registers again with a new version and labels
    response = reporter.post(
        "/api/v1/instances/register", {**ADDRESS, "version": "1.5.0", "labels": {"k": "v"}}
    )
    # then it is the same row, refreshed; what it left out (zone) is kept
    assert response.status_code == 200
    instance = Instance.objects.get()
    assert response.json()["id"] == instance.pk
    assert (instance.version, instance.zone, instance.labels) == ("1.5.0", "a", {"k": "v"})
    assert instance.last_seen_at > first_seen
    update = Event.objects.get(action="instance.updated")
    assert update.payload["changes"]["version"] == ["1.4.2", "1.5.0"]


def test_a_plain_heartbeat_only_moves_last_seen(
    reporter: Any, heard: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    reporter.post("/api/v1/instances/register", {**ADDRESS, "version": "1.4.2"})
    # when it registers again with nothing new
    with django_capture_on_commit_callbacks(execute=True):
        response = reporter.post("/api/v1/instances/register", {**ADDRESS, "version": "1.4.2"})
    # then: no new event floods the timeline, but receivers still hear of it
    assert response.status_code == 200
    assert Event.objects.filter(action__startswith="instance.").count() == 1
    assert heard == [("registered", Instance.objects.get().pk)]


def test_a_stale_instance_that_registers_comes_back(reporter: Any, world: Any) -> None:
    # given
    instance = Instance.objects.create(
        service=world.service,
        environment=world.staging,
        host="10.0.0.5",
        port=8080,
        lifecycle=Lifecycle.STALE,
        heartbeat_seconds=10,
    )
    # when
    response = reporter.post("/api/v1/instances/register", ADDRESS)
    # then
    assert response.json()["lifecycle"] == Lifecycle.REGISTERED
    instance.refresh_from_db()
    assert instance.lifecycle == Lifecycle.REGISTERED
    assert Event.objects.get(action="instance.registered").payload["changes"]["lifecycle"] == [
        Lifecycle.STALE,
        Lifecycle.REGISTERED,
    ]


def test_an_unknown_environment_is_a_400_naming_it(reporter: Any) -> None:
    response = reporter.post("/api/v1/instances/register", {**ADDRESS, "environment": "moon"})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["environment"]
    assert not Instance.objects.exists()


def test_registration_checks_its_input(reporter: Any) -> None:
    response = reporter.post(
        "/api/v1/instances/register",
        {**ADDRESS, "port": 70000, "labels": {"a": 1}, "heartbeat_seconds": 1, "colour": "red"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"colour"}
    response = reporter.post(
        "/api/v1/instances/register",
        {**ADDRESS, "port": 70000, "labels": {"a": 1}, "heartbeat_seconds": 1},
    )
    assert set(response.json()["error"]["fields"]) == {"port", "labels", "heartbeat_seconds"}


def test_a_service_bound_token_registers_only_its_service(world: Any, token_client: Any) -> None:
    # given a report token bound to checkout, and a second payments service
    from catalog.models import Service

    Service.objects.create(slug="ledger", name="Ledger", team=world.team)
    client, _ = token_client(world.team, ["report"], service=world.service)
    # when
    own = client.post("/api/v1/instances/register", ADDRESS)
    other = client.post("/api/v1/instances/register", {**ADDRESS, "service": "ledger"})
    # then
    assert own.status_code == 201
    assert other.status_code == 403
    assert "only act for service 'checkout'" in other.json()["error"]["message"]


def test_another_teams_report_token_cannot_register_here(world: Any, token_client: Any) -> None:
    client, _ = token_client(world.other_team, ["report"])
    response = client.post("/api/v1/instances/register", ADDRESS)
    assert response.status_code == 403
    assert "belongs to team 'search'" in response.json()["error"]["message"]
    assert not Instance.objects.exists()


def test_an_instance_deregisters_itself(
    reporter: Any, heard: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    reporter.post("/api/v1/instances/register", ADDRESS)
    # when it deregisters, twice
    with django_capture_on_commit_callbacks(execute=True):
        first = reporter.post("/api/v1/instances/deregister", ADDRESS)
        again = reporter.post("/api/v1/instances/deregister", ADDRESS)
    # then it is deregistered once
    assert first.status_code == again.status_code == 200
    assert first.json()["lifecycle"] == Lifecycle.DEREGISTERED
    assert Event.objects.filter(action="instance.deregistered").count() == 1
    assert heard == [("deregistered", Instance.objects.get().pk)]


def test_deregistering_an_unknown_instance_is_a_404(reporter: Any) -> None:
    response = reporter.post("/api/v1/instances/deregister", ADDRESS)
    assert response.status_code == 404
    assert (
        "checkout has no instance at 10.0.0.5:8080 in staging"
        in response.json()["error"]["message"]
    )


def test_a_deregistered_instance_can_register_again(reporter: Any) -> None:
    reporter.post("/api/v1/instances/register", ADDRESS)
    reporter.post("/api/v1/instances/deregister", ADDRESS)
    before = timezone.now()
    response = reporter.post("/api/v1/instances/register", ADDRESS)
    assert response.status_code == 200
    instance = Instance.objects.get()
    assert instance.lifecycle == Lifecycle.REGISTERED
    assert instance.registered_at >= before


def test_an_owner_patching_lifecycle_to_deregistered_is_a_deregistration(
    api_as: Any, world: Any
) -> None:
    instance = Instance.objects.create(
        service=world.service, environment=world.staging, host="10.0.0.5", port=8080
    )
    response = api_as("owner").patch(
        f"/api/v1/instances/{instance.pk}", {"lifecycle": "deregistered", "version": "9"}
    )
    assert response.status_code == 200
    assert response.json()["lifecycle"] == "deregistered"
    assert response.json()["version"] == "9"
    assert Event.objects.filter(action="instance.deregistered").count() == 1
    assert Event.objects.filter(action="instance.updated").count() == 1


def test_an_instance_cannot_be_moved_to_another_address(api_as: Any, world: Any) -> None:
    instance = Instance.objects.create(
        service=world.service, environment=world.staging, host="10.0.0.5", port=8080
    )
    response = api_as("owner").patch(f"/api/v1/instances/{instance.pk}", {"port": 9090})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["port"]


def test_adding_an_instance_twice_by_hand_is_a_conflict(api_as: Any) -> None:
    assert api_as("owner").post("/api/v1/instances", ADDRESS).status_code == 201
    response = api_as("owner").post("/api/v1/instances", ADDRESS)
    assert response.status_code == 409
    assert list(response.json()["error"]["fields"]) == ["port"]


def test_instances_filter_by_service_environment_lifecycle_and_version(
    api_as: Any, world: Any
) -> None:
    # given
    for port, env, version, lifecycle in [
        (1, world.staging, "1.0", Lifecycle.ACTIVE),
        (2, world.production, "1.0", Lifecycle.ACTIVE),
        (3, world.production, "2.0", Lifecycle.DRAINING),
    ]:
        Instance.objects.create(
            service=world.service,
            environment=env,
            host="h",
            port=port,
            version=version,
            lifecycle=lifecycle,
        )
    Instance.objects.create(
        service=world.other_service, environment=world.production, host="h", port=4
    )
    client = api_as("viewer")

    def ports(query: str) -> list[int]:
        response = client.get(f"/api/v1/instances?{query}")
        assert response.status_code == 200, response.json()
        return sorted(i["port"] for i in response.json()["results"])

    # then
    assert ports("service=checkout") == [1, 2, 3]
    assert ports("service=checkout&environment=production") == [2, 3]
    assert ports("lifecycle=draining") == [3]
    assert ports("lifecycle=active&lifecycle=registered") == [1, 2, 4]
    assert ports("version=1.0&environment=production") == [2]
    assert ports("team=search") == [4]


@pytest.mark.django_db(transaction=True)
def test_racing_registrations_make_one_instance(world: Any) -> None:
    # given eight copies of the same registration sent at once, on their own connections
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from rest_framework.test import APIClient

    from catalog.models import ApiToken

    _, plain = ApiToken.issue(team=world.team, name="race", scopes=["report"])

    def register(n: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
        try:
            return int(client.post("/api/v1/instances/register", ADDRESS).status_code)
        finally:
            connections.close_all()

    # when
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(register, range(8)))
    # then exactly one created it and the rest refreshed it
    assert statuses == [200] * 7 + [201]
    assert Instance.objects.count() == 1
    assert Event.objects.filter(action="instance.registered").count() == 1


def test_an_unknown_service_is_named_in_the_error(reporter: Any) -> None:
    response = reporter.post("/api/v1/instances/register", {**ADDRESS, "service": "nope"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"service": ["no service 'nope' in the catalog"]}


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "metadata.google.internal"]
)
def test_an_instance_at_an_address_probes_may_never_reach_is_refused(
    reporter: Any, api_as: Any, host: str
) -> None:
    # when an instance registers (or an owner adds one) at a metadata or link-local address
    registered = reporter.post("/api/v1/instances/register", {**ADDRESS, "host": host})
    added = api_as("owner").post("/api/v1/instances", {**ADDRESS, "host": host})
    # then both answer 400 naming host, saying why, and nothing is stored
    for response in (registered, added):
        assert response.status_code == 400
        [reason] = response.json()["error"]["fields"]["host"]
        assert reason.startswith("refused: ")
    assert not Instance.objects.exists()
