"""Scaling test fixtures: a routed service (a traffic route to scale behind) and a group."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.choices import RouterKind
from deployments.models import TrafficRoute, TrafficRouter


@pytest.fixture
def routed(world: Any) -> TrafficRoute:
    """checkout in production behind an HAProxy route (not running: nothing is driven)."""
    router = TrafficRouter.objects.create(
        name="haproxy", kind=RouterKind.HAPROXY, connection={"socket": "/nonexistent.sock"}
    )
    return TrafficRoute.objects.create(
        router=router,
        service=world.service,
        environment=world.production,
        backend="be_checkout",
    )


def group_body(**overrides: Any) -> dict[str, Any]:
    return {
        "service": "checkout",
        "environment": "production",
        "driver": "process",
        "driver_config": {"control_url": "http://127.0.0.1:7900"},
        "min_instances": 2,
        "max_instances": 8,
        "metrics": [{"source": "cpu", "target": 60}],
        **overrides,
    }
