"""SVG badges at their secret URLs: type, cache headers, state and uptime, rotation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from health.choices import ServiceStatus
from health.models import MaintenanceWindow
from statuspage.badges import GREEN, GREY, RED
from statuspage.choices import BadgeKind
from statuspage.models import Badge
from statuspage.tests.conftest import Published, add_rollup, set_health

pytestmark = pytest.mark.django_db


def _get(badge: Badge) -> Any:
    return Client().get(f"/badges/{badge.token}.svg")


def _badge(published: Published, **fields: Any) -> Badge:
    world = published.world
    return Badge.objects.create(service=world.service, environment=world.production, **fields)


def test_a_state_badge_is_svg_with_short_caching_and_follows_health(published: Published) -> None:
    badge = _badge(published, label="Card API")
    response = _get(badge)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "public, max-age=60"
    svg = response.content.decode()
    assert svg.startswith("<svg") and 'aria-label="Card API: up"' in svg and GREEN in svg
    # when the service goes down, the same URL says so in red
    set_health(published.world.service, published.world.production, ServiceStatus.DOWN)
    svg = _get(badge).content.decode()
    assert 'aria-label="Card API: down"' in svg and RED in svg and GREEN not in svg


def test_a_state_badge_says_maintenance(published: Published) -> None:
    badge = _badge(published)
    MaintenanceWindow.objects.create(
        service=published.world.service, starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(minutes=10),
    )  # fmt: skip
    svg = _get(badge).content.decode()
    assert "maintenance" in svg and GREY in svg


def test_uptime_badges_show_each_window(published: Published) -> None:
    world = published.world
    # the fixture's day-old hour: 99.5%; add a bad hour 10 days ago (only in 30 d)
    add_rollup(world.service, world.production, timezone.now() - timedelta(days=10), 1000, 1000)
    figures = {}
    for kind in [BadgeKind.UPTIME_24H, BadgeKind.UPTIME_7D, BadgeKind.UPTIME_30D]:
        figures[kind] = _get(_badge(published, kind=kind)).content.decode()
    assert "Checkout 7d: 99.50%" in figures[BadgeKind.UPTIME_7D]
    assert "Checkout 30d: 49.75%" in figures[BadgeKind.UPTIME_30D]
    assert RED in figures[BadgeKind.UPTIME_30D]


def test_a_label_is_escaped(published: Published) -> None:
    svg = _get(_badge(published, label='<script>"x"')).content.decode()
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_a_disabled_badge_is_404(published: Published) -> None:
    badge = _badge(published, enabled=False)
    assert _get(badge).status_code == 404


def test_rotating_kills_the_old_url(published: Published) -> None:
    badge = _badge(published)
    old = badge.token
    badge.rotate()
    assert Client().get(f"/badges/{old}.svg").status_code == 404
    assert _get(badge).status_code == 200
    assert len(badge.token) >= 40 and badge.token != old


def test_a_guessed_token_is_404(published: Published) -> None:
    _badge(published)
    assert Client().get("/badges/" + "a" * 43 + ".svg").status_code == 404
