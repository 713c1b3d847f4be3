"""Identity-provider groups to team roles: parsed strictly, applied fully at each login."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from catalog.choices import MembershipEvent, Role
from catalog.models import Membership, Team
from controlplane.models import Event
from identity import group_roles
from identity.choices import AccountEvent
from identity.group_roles import Grant, parse

MAPPING = (
    "payments-oncall=payments:deployer, payments-leads=payments:owner,"
    "search-readers=search:viewer, platform-admins=platform:admin"
)


def test_entries_read_as_documented() -> None:
    assert parse(MAPPING) == [
        Grant("payments-oncall", "payments", "deployer"),
        Grant("payments-leads", "payments", "owner"),
        Grant("search-readers", "search", "viewer"),
        Grant("platform-admins", "platform", "admin"),
    ]


def test_one_per_line_allows_group_names_with_commas() -> None:
    text = "cn=oncall,ou=groups,dc=example=payments:deployer\n# comment\n\nops=search:owner\n"
    assert parse(text) == [
        Grant("cn=oncall,ou=groups,dc=example", "payments", "deployer"),
        Grant("ops", "search", "owner"),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("payments-oncall", "is not group=team:role"),
        ("payments-oncall=payments", "is not group=team:role"),
        ("=payments:owner", "is not group=team:role"),
        ("oncall=payments:member", "role 'member' is not one of viewer, deployer, owner"),
        ("admins=platform:owner", "the platform target takes one role, admin"),
    ],
)
def test_a_bad_entry_is_refused_naming_it(text: str, reason: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=reason):
        parse(text)


@pytest.mark.django_db
def test_groups_add_change_and_remove_roles_of_the_teams_they_name(world: Any) -> None:
    # given the viewer holds payments:viewer, search:owner (by hand), and is no admin
    grants = tuple(parse(MAPPING))
    viewer = world.viewer
    Membership.objects.create(user=viewer, team=world.other_team, role=Role.OWNER)
    extra = Team.objects.create(slug="ledger", name="Ledger")
    Membership.objects.create(user=viewer, team=extra, role=Role.OWNER)
    # when they sign in as a member of the on-call and leads groups and the admins
    group_roles.apply(viewer, ["payments-oncall", "payments-leads", "platform-admins"], grants)
    # then payments: the highest role; search (named, no group): gone; ledger: untouched
    roles = dict(Membership.objects.filter(user=viewer).values_list("team__slug", "role"))
    assert roles == {"payments": Role.OWNER, "ledger": Role.OWNER}
    viewer.refresh_from_db()
    assert viewer.is_superuser and viewer.is_staff
    actions = list(Event.objects.order_by("id").values_list("action", "actor_label"))
    assert actions == [
        (MembershipEvent.UPDATED, "sso"),
        (MembershipEvent.DELETED, "sso"),
        (AccountEvent.ADMIN_GRANTED, "sso"),
    ]


@pytest.mark.django_db
def test_leaving_every_group_removes_what_the_mapping_gave(world: Any) -> None:
    # given
    grants = tuple(parse(MAPPING))
    group_roles.apply(world.outsider, ["payments-oncall", "platform-admins"], grants)
    assert world.outsider.memberships.get(team=world.team).role == Role.DEPLOYER
    # when the next login brings no groups
    group_roles.apply(world.outsider, [], grants)
    # then
    world.outsider.refresh_from_db()
    assert not world.outsider.is_superuser
    assert not world.outsider.memberships.filter(team__slug__in=["payments", "search"]).exists()
    assert Event.objects.filter(action=AccountEvent.ADMIN_REVOKED).count() == 1


@pytest.mark.django_db
def test_a_login_that_changes_nothing_publishes_nothing(world: Any) -> None:
    grants = tuple(parse(MAPPING))
    group_roles.apply(world.deployer, ["payments-oncall"], grants)
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_mapped_team_that_does_not_exist_is_skipped(world: Any, caplog: Any) -> None:
    grants = tuple(parse("oncall=nosuchteam:owner,oncall=payments:owner"))
    group_roles.apply(world.viewer, ["oncall"], grants)
    assert world.viewer.memberships.get(team=world.team).role == Role.OWNER
    assert "names team 'nosuchteam', which does not exist" in caplog.text
