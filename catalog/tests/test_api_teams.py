"""Teams and memberships: admins make teams, owners run them, a team keeps an owner."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.choices import Role
from catalog.models import Membership, Team
from controlplane.models import Event

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_team_and_it_is_recorded(api_as: Any) -> None:
    # when
    response = api_as("admin").post("/api/v1/teams", {"slug": "growth", "name": "Growth"})
    # then
    assert response.status_code == 201
    assert response.json()["slug"] == "growth"
    event = Event.objects.get(action="team.created")
    assert event.team == Team.objects.get(slug="growth")
    assert event.actor_label == "root"


def test_an_owner_renames_their_team(api_as: Any, world: Any) -> None:
    response = api_as("owner").patch("/api/v1/teams/payments", {"name": "Payments & billing"})
    assert response.status_code == 200
    world.team.refresh_from_db()
    assert world.team.name == "Payments & billing"
    event = Event.objects.get(action="team.updated")
    assert event.payload["changes"] == {"name": ["Payments", "Payments & billing"]}


def test_an_owner_cannot_delete_their_team(api_as: Any) -> None:
    response = api_as("owner").delete("/api/v1/teams/payments")
    assert response.status_code == 403
    assert "platform admins" in response.json()["error"]["message"]


def test_an_owner_adds_a_member(api_as: Any, world: Any) -> None:
    # when
    response = api_as("owner").post(
        "/api/v1/memberships", {"team": "payments", "user": "outsider", "role": "deployer"}
    )
    # then
    assert response.status_code == 201
    assert Membership.objects.get(team=world.team, user=world.outsider).role == Role.DEPLOYER
    assert Event.objects.filter(action="membership.created", team=world.team).exists()


def test_an_owner_of_another_team_cannot_add_members_here(api_as: Any) -> None:
    response = api_as("outsider").post(
        "/api/v1/memberships", {"team": "payments", "user": "outsider", "role": "owner"}
    )
    assert response.status_code == 403


def test_adding_someone_twice_is_a_conflict(api_as: Any) -> None:
    response = api_as("owner").post(
        "/api/v1/memberships", {"team": "payments", "user": "viewer", "role": "owner"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {
        "user": ["viewer is already a member of payments"]
    }


def test_a_team_keeps_its_last_owner(api_as: Any, world: Any) -> None:
    # given the owner is the team's only owner
    membership = Membership.objects.get(team=world.team, user=world.owner)
    # when they demote or remove themselves
    demoted = api_as("owner").patch(f"/api/v1/memberships/{membership.pk}", {"role": "viewer"})
    removed = api_as("owner").delete(f"/api/v1/memberships/{membership.pk}")
    # then both are refused as conflicts, and the membership is as it was
    assert demoted.status_code == removed.status_code == 409
    assert "last owner of payments" in demoted.json()["error"]["message"]
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_memberships_filter_by_team_and_role(api_as: Any) -> None:
    response = api_as("viewer").get("/api/v1/memberships?team=payments&role=deployer")
    assert [m["user"] for m in response.json()["results"]] == ["deployer"]


def test_teams_are_searchable(api_as: Any) -> None:
    response = api_as("viewer").get("/api/v1/teams?search=sear")
    assert [t["slug"] for t in response.json()["results"]] == ["search"]
