"""Circuits test fixtures: a fast password hasher, a reporting client, a report builder."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2 costs ~0.35 s per persona; these tests are not about passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def reporter(world: Any, token_client: Any) -> Any:
    """An API client holding a `report` token of the payments team (which owns checkout)."""
    client, _ = token_client(world.team, ["report"])
    return client


def report(
    circuit: str = "payments-api",
    *,
    instance: str = "10.0.0.1:8080",
    state: str = "closed",
    at: datetime | None = None,
    ago: float = 0.0,
    **fields: Any,
) -> dict[str, Any]:
    """One report item as the client library sends it."""
    moment = at or timezone.now() - timedelta(seconds=ago)
    return {
        "circuit": circuit,
        "instance": instance,
        "state": state,
        "reported_at": moment.isoformat(),
        **fields,
    }


def batch(
    *items: dict[str, Any], service: str = "checkout", environment: str = "production"
) -> dict[str, Any]:
    return {"service": service, "environment": environment, "reports": list(items)}


@pytest.fixture
def private_live_channel(settings: Any) -> Any:
    """A channel-layer prefix of this test's own, so no other test run's pushes reach it."""
    import uuid

    from channels.layers import channel_layers

    prefix = f"signalbox-test-{uuid.uuid4().hex[:12]}:live"
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "prefix": prefix},
        }
    }
    channel_layers.backends = {}  # layers are cached per alias; build ours
    yield prefix
    channel_layers.backends = {}


def session_cookie(user: Any) -> bytes:
    """The Cookie header of a logged-in browser session for `user`."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()
