"""The scale-in handshake as an instance speaks it: poll the lifecycle (ETag, 304), say ready,
heartbeat, protect itself; with its team's report token or its termination's lifecycle
token, and nobody else's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.choices import Lifecycle
from catalog.models import Instance
from controlplane.models import Event
from scaling import lifecycle
from scaling.choices import ScalingEvent, TerminationState
from scaling.models import Protection, ScalingGroup, Termination

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(world: Any) -> ScalingGroup:
    return ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"},
        lifecycle_timeout_seconds=60,
    )


@pytest.fixture
def instance(world: Any) -> Instance:
    return Instance.objects.create(
        service=world.service,
        environment=world.production,
        host="10.0.0.7",
        port=8080,
        lifecycle=Lifecycle.ACTIVE,
    )


def draining(group: ScalingGroup, instance: Instance) -> tuple[Termination, str]:
    """The instance chosen, drained and confirmed: it is asked to say when it is ready."""
    termination = Termination.objects.create(
        group=group,
        instance=instance,
        instance_label=str(instance),
        state=TerminationState.AWAITING_READY,
        lifecycle_deadline_at=timezone.now() + timedelta(seconds=60),
    )
    token = lifecycle.issue_token(termination)
    termination.save()
    Instance.objects.filter(pk=instance.pk).update(lifecycle=Lifecycle.DRAINING)
    return termination, token


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_an_instance_polls_cheaply_and_learns_when_to_drain(
    group: ScalingGroup, instance: Instance, token_client: Any, world: Any
) -> None:
    client, _ = token_client(world.team, ["report"])
    url = f"/api/v1/instances/{instance.pk}/lifecycle"
    # given an instance in service polling its lifecycle
    first = client.get(url)
    assert first.status_code == 200
    assert first.json()["state"] == "in_service"
    # then the same poll with the ETag answers 304 while nothing changed
    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    # when it is chosen for scale-in
    draining(group, instance)
    # then the next poll says so, with the deadline
    changed = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200
    body = changed.json()
    assert body["state"] == "terminate_when_ready"
    assert body["deadline"] is not None and body["heartbeat_seconds"] == 60


def test_ready_with_the_lifecycle_token_ends_the_wait_and_is_idempotent(
    group: ScalingGroup, instance: Instance
) -> None:
    termination, token = draining(group, instance)
    url = f"/api/v1/instances/{instance.pk}/ready-to-terminate"
    answer = bearer(token).post(url, {"reason": "queue empty"}, format="json")
    assert answer.status_code == 200, answer.json()
    termination.refresh_from_db()
    assert termination.ready_at is not None
    first_ready = termination.ready_at
    assert Instance.objects.get(pk=instance.pk).lifecycle == Lifecycle.READY_TO_TERMINATE
    # a retry (the instance did not see the answer) changes nothing
    assert bearer(token).post(url, {}, format="json").status_code == 200
    termination.refresh_from_db()
    assert termination.ready_at == first_ready
    # and the next pass stops it with ending "ready"
    lifecycle._await_ready(termination, timezone.now())
    assert (termination.state, termination.ending) == (TerminationState.STOPPING, "ready")


def test_a_heartbeat_restarts_the_timeout_within_awss_bounds(
    group: ScalingGroup, instance: Instance
) -> None:
    termination, token = draining(group, instance)
    Termination.objects.filter(pk=termination.pk).update(
        lifecycle_deadline_at=timezone.now() + timedelta(seconds=5)
    )
    answer = bearer(token).post(f"/api/v1/instances/{instance.pk}/lifecycle-heartbeat")
    assert answer.status_code == 200, answer.json()
    termination.refresh_from_db()
    assert termination.lifecycle_deadline_at is not None
    left = (termination.lifecycle_deadline_at - timezone.now()).total_seconds()
    assert 55 < left <= 60
    assert termination.last_heartbeat_at is not None
    # heartbeats cannot hold a termination past 100 x the timeout from its start
    Termination.objects.filter(pk=termination.pk).update(
        started_at=timezone.now() - timedelta(seconds=100 * 60 - 10)
    )
    bearer(token).post(f"/api/v1/instances/{instance.pk}/lifecycle-heartbeat")
    termination.refresh_from_db()
    assert termination.lifecycle_deadline_at is not None
    assert (termination.lifecycle_deadline_at - timezone.now()).total_seconds() < 11


def test_tokens_answer_only_for_their_own_instance_and_team(
    group: ScalingGroup, instance: Instance, world: Any, token_client: Any
) -> None:
    _, token = draining(group, instance)
    other = Instance.objects.create(
        service=world.service, environment=world.production, host="10.0.0.8", port=8080
    )
    # a lifecycle token for another instance
    answer = bearer(token).post(f"/api/v1/instances/{other.pk}/ready-to-terminate")
    assert answer.status_code == 403
    assert "another instance" in answer.json()["error"]["message"]
    # a lifecycle token cannot set protection
    assert bearer(token).post(f"/api/v1/instances/{instance.pk}/protection").status_code == 403
    # a forged or spent token
    forged = token[:-4] + "abcd"
    assert bearer(forged).get(f"/api/v1/instances/{instance.pk}/lifecycle").status_code == 401
    # another team's report token
    outsider, _ = token_client(world.other_team, ["report"])
    answer = outsider.post(f"/api/v1/instances/{instance.pk}/ready-to-terminate")
    assert answer.status_code == 403
    # a read token of the team may poll, not answer
    reader, _ = token_client(world.team, ["read"])
    assert reader.get(f"/api/v1/instances/{instance.pk}/lifecycle").status_code == 200
    assert reader.post(f"/api/v1/instances/{instance.pk}/ready-to-terminate").status_code == 403
    # nobody answers for an instance that is not leaving
    reporter, _ = token_client(world.team, ["report"])
    answer = reporter.post(f"/api/v1/instances/{other.pk}/ready-to-terminate")
    assert answer.status_code == 404
    assert "not being terminated" in answer.json()["error"]["message"]


def test_an_instance_protects_itself_like_an_ecs_task(
    group: ScalingGroup, instance: Instance, world: Any, token_client: Any
) -> None:
    client, _ = token_client(world.team, ["report"])
    url = f"/api/v1/instances/{instance.pk}/protection"
    # the default is ECS's 120 minutes
    answer = client.post(url, {"reason": "running a migration"}, format="json")
    assert answer.status_code == 200, answer.json()
    protection = Protection.objects.get(instance=instance)
    assert 119 < (protection.until - timezone.now()).total_seconds() / 60 <= 120
    assert Event.objects.filter(action=ScalingEvent.PROTECTED).count() == 1
    # bad input names the field
    answer = client.post(url, {"minutes": 0}, format="json")
    assert answer.status_code == 400
    assert "minutes" in answer.json()["error"]["fields"]
    answer = client.post(url, {"minutes": 5000}, format="json")
    assert answer.status_code == 400
    # lifting it
    assert client.delete(url).status_code == 200
    assert not Protection.objects.filter(instance=instance).exists()
