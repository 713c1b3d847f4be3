"""Invitations moved from the dashboard to the catalog by migrations that change the state
only: an invitation made before the move is the same row, link and all, after it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from catalog.models import Invitation

BEFORE = [("dashboard", "0001_team_invitations"), ("catalog", "0004_external_status_source")]


@pytest.mark.django_db(transaction=True)
def test_an_invitation_made_before_the_move_still_works_after_it(world: Any) -> None:
    # given the schema before the move, and an invitation made by the dashboard's model
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    old_model = old_apps.get_model("dashboard", "Invitation")
    expires = timezone.now() + timedelta(hours=1)
    old = old_model.objects.create(
        team_id=world.team.pk, email="kept@example.com", role="deployer",
        token_hash=Invitation.hash_token("the-link"), expires_at=expires,
    )  # fmt: skip
    # when the migrations move it (and everything after them, so later tests find the
    # schema they expect)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    # then the catalog's model reads the same row, and its link still finds it
    moved = Invitation.objects.get(token_hash=Invitation.hash_token("the-link"))
    assert (moved.pk, moved.team, moved.email, moved.role) == (
        old.pk, world.team, "kept@example.com", "deployer",
    )  # fmt: skip
    assert moved.is_pending and list(world.team.invitations.all()) == [moved]
