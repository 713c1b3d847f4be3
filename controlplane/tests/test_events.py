"""The spine: events are rows in the caller's transaction, and shown only after commit."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from controlplane import events, live
from controlplane.models import Event


@pytest.fixture
def pushed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    # Records the ids of what reaches live.broadcast; real pushes are exercised in test_live.
    seen: list[int] = []
    monkeypatch.setattr(live, "broadcast", lambda event: seen.append(event.pk))
    return seen


@pytest.mark.django_db(transaction=True)
def test_it_pushes_only_after_commit(world: Any, pushed: list[int]) -> None:
    # given / when
    with transaction.atomic():
        event = events.publish("service.updated", actor=world.owner, subject=world.service)
        assert pushed == []
    # then
    assert pushed == [event.pk]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_publishes_nothing(world: Any, pushed: list[int]) -> None:
    # given / when
    with pytest.raises(RuntimeError), transaction.atomic():
        events.publish("service.updated", actor=world.owner, subject=world.service)
        raise RuntimeError("the caller's work failed")
    # then
    assert pushed == []
    assert not Event.objects.filter(action="service.updated").exists()


@pytest.mark.django_db
def test_it_fills_team_and_service_from_the_subject(world: Any) -> None:
    event = events.publish("service.updated", actor=world.deployer, subject=world.service)
    assert event.team == world.team
    assert event.service == world.service
    assert event.actor_user == world.deployer
    assert event.actor_label == "deployer"
    assert event.subject_label == "checkout"


@pytest.mark.django_db
def test_it_names_a_token_actor(world: Any) -> None:
    from catalog.models import ApiToken

    token, _ = ApiToken.issue(team=world.team, name="ci", scopes=["deploy"])
    event = events.publish("rollout.started", actor=token, subject=world.service)
    assert event.actor_token == token
    assert event.actor_label == "token:payments/ci"
