"""Fixtures shared by every app's tests: personas, teams, a service, API clients.

Tests run against the real PostgreSQL and Redis of the machine (see docs/operations.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("SIGNALBOX_ENV", "test")

# Browser fixtures (asgi_server, chromium, page) for tests marked `browser`: docs/testing.md.
pytest_plugins = ["controlplane.tests.browser"]


@dataclass
class World:
    """Two teams, each with a service in two environments, and one user per persona."""

    team: Any
    other_team: Any
    staging: Any
    production: Any
    service: Any
    other_service: Any
    owner: Any
    deployer: Any
    viewer: Any
    outsider: Any
    admin: Any


@pytest.fixture
def world(db: Any) -> World:
    from django.contrib.auth import get_user_model

    from catalog.choices import Role
    from catalog.models import Environment, Membership, Service, Team

    user_model = get_user_model()
    team = Team.objects.create(slug="payments", name="Payments")
    other_team = Team.objects.create(slug="search", name="Search")
    staging = Environment.objects.create(slug="staging", name="Staging", order=10)
    production = Environment.objects.create(
        slug="production", name="Production", order=20, is_production=True
    )
    service = Service.objects.create(slug="checkout", name="Checkout", team=team)
    other_service = Service.objects.create(slug="indexer", name="Indexer", team=other_team)
    people = {}
    for name, role in [("owner", Role.OWNER), ("deployer", Role.DEPLOYER), ("viewer", Role.VIEWER)]:
        user = user_model.objects.create_user(name, password="pw-" + name)
        Membership.objects.create(user=user, team=team, role=role)
        people[name] = user
    outsider = user_model.objects.create_user("outsider", password="pw-outsider")
    Membership.objects.create(user=outsider, team=other_team, role=Role.OWNER)
    admin = user_model.objects.create_superuser("root", password="pw-root")
    return World(
        team=team,
        other_team=other_team,
        staging=staging,
        production=production,
        service=service,
        other_service=other_service,
        outsider=outsider,
        admin=admin,
        **people,
    )


@pytest.fixture
def api_as(world: World) -> Any:
    """api_as("owner") -> an APIClient logged in as that persona ("anonymous" for none)."""
    from rest_framework.test import APIClient

    def make(persona: str) -> APIClient:
        client = APIClient()
        if persona != "anonymous":
            client.force_authenticate(user=getattr(world, persona))
        return client

    return make


@pytest.fixture
def token_client(world: World) -> Any:
    """token_client(team, scopes, service=None) -> (APIClient with Bearer token, ApiToken)."""
    from rest_framework.test import APIClient

    from catalog.models import ApiToken

    def make(team: Any, scopes: list[str], service: Any = None) -> tuple[APIClient, Any]:
        token, plain = ApiToken.issue(
            team=team, name=f"t-{len(scopes)}-{team.slug}-{ApiToken.objects.count()}",
            scopes=scopes, service=service,
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
        return client, token

    return make
