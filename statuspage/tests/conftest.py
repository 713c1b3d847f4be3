"""A published page over the world's checkout service, with health, rollups and an
internal incident whose details must never reach the public."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Instance
from health.choices import ServiceStatus
from health.models import HourRollup, RollupWatermark, ServiceHealth
from health.models.history import HISTOGRAM_SIZE
from statuspage.models import StatusPage, StatusPageService

INTERNAL_HOST = "checkout-7.prod.internal"
INTERNAL_PORT = 48123


@dataclass
class Published:
    page: StatusPage
    entry: StatusPageService
    world: Any


def set_health(service: Any, environment: Any, status: str) -> None:
    ServiceHealth.objects.update_or_create(
        service=service, environment=environment, defaults={"status": status}
    )


def add_rollup(service: Any, environment: Any, at: Any, count: int, failures: int) -> None:
    hour = at.replace(minute=0, second=0, microsecond=0)
    HourRollup.objects.create(
        service=service, environment=environment, bucket=hour, count=count,
        failures=failures, histogram=[0] * HISTOGRAM_SIZE,
    )  # fmt: skip
    # A whole hour row: its minutes are folded, so the watermark is past it.
    end = hour + timedelta(hours=1)
    mark, _ = RollupWatermark.objects.get_or_create(id=1, defaults={"folded_until": end})
    if mark.folded_until < end:
        RollupWatermark.objects.filter(id=1).update(folded_until=end)


@pytest.fixture
def published(world: Any) -> Published:
    Instance.objects.create(
        service=world.service, environment=world.production, host=INTERNAL_HOST,
        port=INTERNAL_PORT,
    )  # fmt: skip
    page = StatusPage.objects.create(
        slug="shop", title="Acme Shop", team=world.team, environment=world.production,
        published=True,
    )  # fmt: skip
    entry = StatusPageService.objects.create(
        page=page, service=world.service, display_name="Card API"
    )
    set_health(world.service, world.production, ServiceStatus.HEALTHY)
    yesterday = timezone.now() - timedelta(days=1)
    add_rollup(world.service, world.production, yesterday, count=1000, failures=5)
    return Published(page, entry, world)
