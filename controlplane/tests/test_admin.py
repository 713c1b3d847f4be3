"""The Django admin: the catalog for platform admins, tokens by hash, events read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from catalog.models import ApiToken, Instance
from controlplane.events import publish
from controlplane.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, world: Any) -> Client:
    client.force_login(world.admin)
    return client


@pytest.mark.parametrize(
    "model",
    ["catalog/team", "catalog/environment", "catalog/service", "catalog/instance",
     "catalog/externaldependency", "catalog/apitoken", "controlplane/event"],
)  # fmt: skip
def test_each_list_opens_for_a_platform_admin(admin_client: Client, world: Any, model: str) -> None:
    Instance.objects.create(
        service=world.service, environment=world.staging, host="10.0.0.5", port=80
    )
    publish("service.updated", subject=world.service)
    assert admin_client.get(f"/admin/{model}/").status_code == 200


def test_the_admin_is_closed_to_people_who_are_not_staff(client: Client, world: Any) -> None:
    client.force_login(world.owner)
    assert client.get("/admin/catalog/team/")["Location"].startswith("/admin/login/")


def test_a_team_is_edited_with_its_members(admin_client: Client, world: Any) -> None:
    page = admin_client.get(f"/admin/catalog/team/{world.team.pk}/change/").content.decode()
    assert "memberships-TOTAL_FORMS" in page
    assert "owner" in page


def test_instances_can_be_filtered_by_lifecycle_environment_and_team(
    admin_client: Client, world: Any
) -> None:
    Instance.objects.create(
        service=world.service, environment=world.staging, host="10.0.0.5", port=80
    )
    Instance.objects.create(
        service=world.other_service, environment=world.production, host="10.0.0.6", port=80
    )
    page = admin_client.get(
        f"/admin/catalog/instance/?environment__id__exact={world.staging.pk}"
        f"&service__team__id__exact={world.team.pk}&lifecycle__exact=registered"
    ).content.decode()
    assert "10.0.0.5:80" in page
    assert "10.0.0.6:80" not in page


def test_a_token_shows_its_hash_never_its_value_and_cannot_be_made_here(
    admin_client: Client, world: Any
) -> None:
    token, plain = ApiToken.issue(team=world.team, name="deploy-bot", scopes=["deploy"])
    page = admin_client.get(f"/admin/catalog/apitoken/{token.pk}/change/").content.decode()
    assert token.key_hash in page
    assert plain not in page
    assert plain.rsplit("_", 1)[1] not in page  # not even the secret part
    assert 'name="key_hash"' not in page  # shown, not editable
    assert admin_client.get("/admin/catalog/apitoken/add/").status_code == 403


def test_revoking_tokens_from_the_admin_is_recorded(admin_client: Client, world: Any) -> None:
    # given two active tokens
    first, _ = ApiToken.issue(team=world.team, name="ci", scopes=["read"])
    second, _ = ApiToken.issue(team=world.team, name="bot", scopes=["deploy"])
    # when the admin revokes both
    response = admin_client.post(
        "/admin/catalog/apitoken/",
        {"action": "revoke", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    # then they no longer work, and the audit log says who revoked them
    assert "Revoked 2 token(s)." in response.content.decode()
    assert ApiToken.objects.active().filter(pk__in=[first.pk, second.pk]).count() == 0
    revoked = Event.objects.filter(action="token.revoked")
    assert sorted(e.subject_label for e in revoked) == ["payments/bot", "payments/ci"]
    assert {e.actor_label for e in revoked} == {"root"}


def test_events_cannot_be_added_changed_or_deleted(admin_client: Client, world: Any) -> None:
    event = publish("service.updated", subject=world.service)
    assert admin_client.get("/admin/controlplane/event/add/").status_code == 403
    assert admin_client.get(f"/admin/controlplane/event/{event.pk}/delete/").status_code == 403
    page = admin_client.get(f"/admin/controlplane/event/{event.pk}/change/").content.decode()
    assert "service.updated" in page
    assert 'name="_save"' not in page
