"""Fixtures of the debugging tests: a config changed through the API, instances, tokens."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def instance(world: Any) -> Any:
    from catalog.models import Instance

    return Instance.objects.create(
        service=world.service,
        environment=world.production,
        host="127.0.0.1",
        port=18001,
        zone="eu-west-1a",
    )


@pytest.fixture
def report_token(world: Any) -> str:
    from catalog.choices import Scope
    from catalog.models import ApiToken

    _, plain = ApiToken.issue(team=world.team, name="instances", scopes=[Scope.REPORT])
    return plain


CONFIG_URL = "/api/v1/runtime-config/checkout/production"
